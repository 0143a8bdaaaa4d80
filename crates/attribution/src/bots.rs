//! Telling link previews from people.
//!
//! Posting a link makes platforms fetch it at once (Mastodon: every server
//! that receives the post), which would count as clicks. The markers live in
//! `data/preview-bots.txt` so the list can be reviewed and extended without
//! reading code; the file's header names the sources.

use std::sync::LazyLock;

const LIST: &str = include_str!("../data/preview-bots.txt");

struct Patterns {
    /// Lower-case substrings that mark a bot.
    markers: Vec<String>,
    /// Lower-case substrings removed before looking for markers.
    exceptions: Vec<String>,
}

static PATTERNS: LazyLock<Patterns> = LazyLock::new(|| parse(LIST));

fn parse(list: &str) -> Patterns {
    let mut patterns = Patterns {
        markers: Vec::new(),
        exceptions: Vec::new(),
    };
    for line in list.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_prefix('!') {
            Some(exception) => patterns.exceptions.push(exception.to_ascii_lowercase()),
            None => patterns.markers.push(line.to_ascii_lowercase()),
        }
    }
    patterns
}

/// True when the user agent is a link unfurler, preview fetcher or crawler,
/// whose request is not a click. An empty user agent counts as a bot:
/// browsers always send one.
pub fn is_preview_bot(user_agent: &str) -> bool {
    let user_agent = user_agent.trim();
    if user_agent.is_empty() {
        return true;
    }
    let mut user_agent = user_agent.to_ascii_lowercase();
    for exception in &PATTERNS.exceptions {
        user_agent = user_agent.replace(exception.as_str(), " ");
    }
    PATTERNS
        .markers
        .iter()
        .any(|m| user_agent.contains(m.as_str()))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn the_list_is_well_formed() {
        let patterns = parse(LIST);
        assert!(patterns.markers.len() > 20);
        assert!(
            patterns
                .markers
                .iter()
                .all(|m| !m.is_empty() && m.is_ascii())
        );
        let unique: HashSet<&String> = patterns.markers.iter().collect();
        assert_eq!(unique.len(), patterns.markers.len(), "duplicate marker");
        assert_eq!(patterns.exceptions, vec!["cubot".to_owned()]);
    }

    #[test]
    fn recognises_each_platforms_preview_fetcher() {
        let agents = [
            "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
            "TelegramBot (like TwitterBot)",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "Slackbot 1.0 (+https://api.slack.com/robots)",
            "Twitterbot/1.0",
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "facebookcatalog/1.0",
            "Facebot",
            "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
            "WhatsApp/2.23.20.0",
            "http.rb/5.1.1 (Mastodon/4.2.10; +https://mastodon.social/)",
            "Mozilla/5.0 (compatible; Bluesky Cardyb/1.1; +mailto:support@bsky.app)",
            "Pleroma 2.5.2; https://pleroma.example <admin@pleroma.example>",
            "Akkoma 3.10.4; https://akkoma.example <admin@akkoma.example>",
            "Misskey/2024.5.0 (https://misskey.io)",
            "SummalyBot/5.0.2",
            "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5 skype-url-preview@microsoft.com",
            "Mozilla/5.0 (compatible; redditbot/1.0; +http://www.reddit.com/feedback)",
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
            "Mozilla/5.0 (compatible; Embedly/0.2; +http://support.embed.ly/)",
            "Iframely/1.3.1 (+https://iframely.com/docs/about)",
            "Mozilla/5.0 (compatible; vkShare; +http://vk.com/dev/Share)",
            "Pinterest/0.2 (+https://www.pinterest.com/bot.html)",
            "Mozilla/5.0 (compatible; Pinterestbot/1.0; +https://www.pinterest.com/bot.html)",
            "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
            "Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)",
            "Mozilla/5.0 (compatible; SomeNewCrawler/0.1)",
        ];
        for agent in agents {
            assert!(is_preview_bot(agent), "{agent}");
        }
    }

    #[test]
    fn an_empty_user_agent_is_a_bot() {
        assert!(is_preview_bot(""));
        assert!(is_preview_bot("   "));
    }

    #[test]
    fn people_are_not_bots() {
        let agents = [
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
            "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
            // Apps' own in-app browsers are people reading the link.
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/460.0.0.38.107;FBBV/592683340]",
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [Pinterest/iOS]",
            // A Cubot phone contains "bot" but is a phone.
            "Mozilla/5.0 (Linux; Android 10; CUBOT P40) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
            // Left out on purpose: see the list's header.
            "curl/8.5.0",
        ];
        for agent in agents {
            assert!(!is_preview_bot(agent), "{agent}");
        }
    }

    #[test]
    fn matching_ignores_case() {
        assert!(is_preview_bot("DISCORDBOT/2.0"));
        assert!(is_preview_bot(
            "http.rb/5.2 (MASTODON/4.3; +https://example.social/)"
        ));
    }
}
