//! A request's cookies and the cookies queued for its response (Nex.Cookie).

use http::header::GetAll;
use http::HeaderValue;

use crate::cookie_header;
use crate::error::SessionError;
use crate::session_cookie::SideCookie;

/// The request's `Cookie` headers, and the `Set-Cookie`s queued for the response.
pub(super) struct Cookies {
    /// The request's first `Cookie` header: usually the only one, kept without a `Vec`.
    first_header: Option<HeaderValue>,
    more_headers: Vec<HeaderValue>,
    queued: Vec<QueuedCookie>,
}

/// A cookie queued for the response.
struct QueuedCookie {
    name: String,
    /// What the cookie reads as for the rest of the request: `None` for a deletion.
    value: Option<String>,
    /// The `Set-Cookie` value.
    header: HeaderValue,
}

impl Cookies {
    /// The `Cookie` headers of a request, nothing queued yet.
    pub(super) fn from_request(cookie_headers: &GetAll<'_, HeaderValue>) -> Self {
        let mut all = cookie_headers.iter();
        let first_header = all.next().cloned();
        Self { first_header, more_headers: all.cloned().collect(), queued: Vec::new() }
    }

    /// Queues a `Set-Cookie` for `name`, replacing one queued earlier.
    pub(super) fn queue(&mut self, name: &str, value: Option<String>, header: HeaderValue) {
        self.queued.retain(|q| q.name != name);
        self.queued.push(QueuedCookie { name: name.to_owned(), value, header });
    }

    /// A cookie's value, as queued in this request or else as the request sent it.
    pub(super) fn get(&self, name: &str) -> Option<String> {
        if let Some(queued) = self.queued.iter().find(|q| q.name == name) {
            return queued.value.clone();
        }
        self.request_pairs().find(|(n, _)| *n == name).map(|(_, v)| v.to_owned())
    }

    /// Every request cookie, with this request's queued changes applied.
    pub(super) fn all(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .request_pairs()
            .filter(|(n, _)| !self.queued.iter().any(|q| q.name == *n))
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        all.extend(self.queued.iter().filter_map(|q| Some((q.name.clone(), q.value.clone()?))));
        all
    }

    /// The data of a genuine side cookie (flash, CSRF), as queued or as sent.
    pub(super) fn read_signed(&self, side: &SideCookie, now_ms: i64) -> Option<Vec<u8>> {
        side.verify(&self.get(side.name())?, now_ms)
    }

    /// Queues a side cookie carrying `data`.
    ///
    /// # Errors
    /// [`SessionError::InvalidCookie`] if it cannot go into a header.
    pub(super) fn queue_signed(&mut self, side: &SideCookie, data: &[u8], now_ms: i64) -> Result<(), SessionError> {
        let token = side.sign(data, now_ms);
        let header = side.header(&token)?;
        self.queue(side.name(), Some(token), header);
        Ok(())
    }

    /// Queues the deletion of a side cookie, if the browser has one (or one was
    /// queued): no `Set-Cookie` for a cookie that is not there.
    pub(super) fn delete_if_present(&mut self, side: &SideCookie) {
        if self.get(side.name()).is_some() {
            self.queue(side.name(), None, side.deletion());
        }
    }

    /// Whether any cookie is queued.
    pub(super) fn any_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    /// The queued `Set-Cookie` values, in order; the queue is left empty.
    pub(super) fn take_queued(&mut self) -> Vec<HeaderValue> {
        self.queued.drain(..).map(|q| q.header).collect()
    }

    fn request_pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        cookie_header::request_pairs(self.first_header.iter().chain(&self.more_headers))
    }
}
