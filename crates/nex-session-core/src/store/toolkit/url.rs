//! Reading store URLs: the one percent-decoding the stores and [`redact`](super::redact) share.

/// `text` with its `%XX` escapes decoded (`+` stays `+`: store URLs are not
/// form data, and libpq reads them so); `None` when an escape is cut short or
/// not hexadecimal, or the result is not UTF-8.
///
/// ```
/// use nex_session::store::toolkit::url::percent_decode;
///
/// assert_eq!(percent_decode("p%40ss%2Fw0rd").as_deref(), Some("p@ss/w0rd"));
/// assert_eq!(percent_decode("a+b").as_deref(), Some("a+b"));
/// assert_eq!(percent_decode("cut%2"), None);
/// assert_eq!(percent_decode("%zz"), None);
/// ```
pub fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
