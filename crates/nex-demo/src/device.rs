//! A short description of the device a sign-in came from ("Firefox on
//! Windows"), for the dashboard's list of the user's sessions.
//!
//! The `User-Agent` header is chosen by the client, so the summary is built
//! only from the fixed names below: whatever a client sends, the list never
//! shows text it chose (no markup, no "call this number" in a trusted page), and
//! the summary is always short. An unrecognised client is an "Unknown browser".

/// What a summary says when the header names nothing recognisable.
pub(crate) const UNKNOWN_BROWSER: &str = "Unknown browser";

/// Browsers and tools, by the token that identifies them, most specific first:
/// Edge and Opera also say "Chrome", Chrome also says "Safari", and the iOS
/// browsers are Safari underneath.
const CLIENTS: &[(&str, &str)] = &[
    ("Edg/", "Edge"),
    ("EdgA/", "Edge"),
    ("EdgiOS/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("HeadlessChrome/", "Headless Chrome"),
    ("CriOS/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
    ("curl/", "curl"),
    ("Wget/", "Wget"),
    ("HTTPie/", "HTTPie"),
];

/// Operating systems, by the token that identifies them, most specific first:
/// Android also says "Linux", iOS says "like Mac OS X".
const SYSTEMS: &[(&str, &str)] = &[
    ("Windows", "Windows"),
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("CrOS", "ChromeOS"),
    ("Macintosh", "macOS"),
    ("Mac OS X", "macOS"),
    ("Linux", "Linux"),
];

/// The summary of a `User-Agent` header (absent, or not text: an unknown browser).
///
/// Command-line tools are named alone ("curl"): their header says nothing of
/// the system they run on.
pub(crate) fn summary(user_agent: Option<&str>) -> String {
    let agent = user_agent.unwrap_or_default();
    let client = first_match(agent, CLIENTS);
    let system = first_match(agent, SYSTEMS);
    match (client, system) {
        (Some(client), Some(system)) => format!("{client} on {system}"),
        (Some(client), None) => client.to_owned(),
        (None, Some(system)) => format!("{UNKNOWN_BROWSER} on {system}"),
        (None, None) => UNKNOWN_BROWSER.to_owned(),
    }
}

fn first_match(agent: &str, table: &[(&str, &'static str)]) -> Option<&'static str> {
    table.iter().find(|(token, _)| agent.contains(token)).map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The longest summary allowed, in bytes: it must fit a line of the list.
    const MAX_SUMMARY_LEN: usize = 60;

    const CHROME_LINUX: &str =
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";
    const FIREFOX_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0";
    const SAFARI_MAC: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 \
                              (KHTML, like Gecko) Version/18.1 Safari/605.1.15";
    const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 \
                                 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
    const EDGE_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                                (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.2903.70";
    const CHROME_ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 \
                                  (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36";
    const HEADLESS_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 \
                                  (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36";

    #[test]
    fn common_browsers_are_named_with_their_system() {
        assert_eq!(summary(Some(CHROME_LINUX)), "Chrome on Linux");
        assert_eq!(summary(Some(FIREFOX_WINDOWS)), "Firefox on Windows");
        assert_eq!(summary(Some(SAFARI_MAC)), "Safari on macOS");
        assert_eq!(summary(Some(HEADLESS_LINUX)), "Headless Chrome on Linux");
    }

    #[test]
    fn the_more_specific_name_wins_over_the_tokens_it_borrows() {
        assert_eq!(summary(Some(EDGE_WINDOWS)), "Edge on Windows", "Edge also says Chrome and Safari");
        assert_eq!(summary(Some(CHROME_ANDROID)), "Chrome on Android", "Android also says Linux");
        assert_eq!(summary(Some(SAFARI_IPHONE)), "Safari on iOS", "iOS also says Mac OS X");
    }

    #[test]
    fn command_line_tools_are_named_alone() {
        assert_eq!(summary(Some("curl/8.5.0")), "curl");
        assert_eq!(summary(Some("Wget/1.21.4")), "Wget");
    }

    #[test]
    fn anything_else_is_an_unknown_browser() {
        assert_eq!(summary(None), "Unknown browser");
        assert_eq!(summary(Some("")), "Unknown browser");
        assert_eq!(summary(Some("python-requests/2.32")), "Unknown browser");
        assert_eq!(summary(Some("Mozilla/5.0 (X11; Linux x86_64) Lynx")), "Unknown browser on Linux");
    }

    #[test]
    fn no_text_the_client_chose_reaches_the_summary_and_it_stays_short() {
        let hostile = [
            "<script>alert(1)</script> Firefox/1.0 (Windows) \"onmouseover=",
            "Call +1 555 0100 to unlock your account; Chrome/1 Linux",
            &"A".repeat(10_000),
            "Firefox/\u{202e}1.0 \u{0}\r\n Set-Cookie: x=y",
        ];
        for agent in hostile {
            let text = summary(Some(agent));
            assert!(text.len() <= MAX_SUMMARY_LEN, "{text}");
            assert!(text.chars().all(|c| c.is_ascii_alphanumeric() || c == ' '), "{text:?} from {agent:?}");
            assert!(!text.contains("script") && !text.contains("555"), "{text}");
        }
        assert_eq!(summary(Some(hostile[0])), "Firefox on Windows");
    }

    #[test]
    fn every_combination_of_names_fits_the_limit() {
        for (_, client) in CLIENTS.iter().chain([&("", UNKNOWN_BROWSER)]) {
            for (_, system) in SYSTEMS {
                assert!(format!("{client} on {system}").len() <= MAX_SUMMARY_LEN, "{client} on {system}");
            }
        }
    }
}
