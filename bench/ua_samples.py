"""Hand-written user-agents of real browsers and of well-known bots (late 2026).

bench/ua_compare.py scores the user-agent lists on them (plus the example
instances crawler-user-agents ships); tests/test_quality.py checks the chosen
classifier on them.  BROWSERS are people: desktop and mobile browsers and the
in-app webviews a person reads a page in (Facebook, Instagram, TikTok, ...).
BOTS fetch without a person looking: crawlers, link unfurlers (chat apps'
previews), monitors, HTTP libraries, headless browsers, AI crawlers.
"""

_MAC = "Macintosh; Intel Mac OS X 10_15_7"
_WIN = "Windows NT 10.0; Win64; x64"
_IPHONE = "iPhone; CPU iPhone OS 18_6 like Mac OS X"
_IPAD = "iPad; CPU OS 18_6 like Mac OS X"
_ANDROID = "Linux; Android 10; K"
_WK = "AppleWebKit/537.36 (KHTML, like Gecko)"
_IOSWK = "AppleWebKit/605.1.15 (KHTML, like Gecko)"

BROWSERS = [
    # Chrome
    f"Mozilla/5.0 ({_WIN}) {_WK} Chrome/142.0.0.0 Safari/537.36",
    f"Mozilla/5.0 ({_MAC}) {_WK} Chrome/142.0.0.0 Safari/537.36",
    f"Mozilla/5.0 (X11; Linux x86_64) {_WK} Chrome/141.0.0.0 Safari/537.36",
    f"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) {_WK} Chrome/142.0.0.0 Safari/537.36",
    f"Mozilla/5.0 ({_ANDROID}) {_WK} Chrome/142.0.0.0 Mobile Safari/537.36",
    f"Mozilla/5.0 ({_ANDROID}) {_WK} Chrome/140.0.7339.207 Mobile Safari/537.36",
    f"Mozilla/5.0 ({_ANDROID}) {_WK} Chrome/142.0.0.0 Safari/537.36",  # tablet
    f"Mozilla/5.0 ({_IPHONE}) {_IOSWK} CriOS/142.0.7444.46 Mobile/15E148 Safari/604.1",
    f"Mozilla/5.0 ({_IPAD}) {_IOSWK} CriOS/142.0.7444.46 Mobile/15E148 Safari/604.1",
    f"Mozilla/5.0 (Windows NT 10.0; WOW64) {_WK} Chrome/109.0.0.0 Safari/537.36",  # Windows 7/8 last
    # Firefox
    f"Mozilla/5.0 ({_WIN}; rv:145.0) Gecko/20100101 Firefox/145.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:145.0) Gecko/20100101 Firefox/145.0",
    "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:145.0) Gecko/20100101 Firefox/145.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0",
    "Mozilla/5.0 (Android 15; Mobile; rv:145.0) Gecko/145.0 Firefox/145.0",
    f"Mozilla/5.0 ({_IPHONE}) {_IOSWK} FxiOS/145.0 Mobile/15E148 Safari/605.1.15",
    f"Mozilla/5.0 ({_WIN}; rv:128.0) Gecko/20100101 Firefox/128.0",  # ESR
    # Safari
    f"Mozilla/5.0 ({_MAC}) {_IOSWK} Version/26.1 Safari/605.1.15",
    f"Mozilla/5.0 ({_MAC}) {_IOSWK} Version/18.6 Safari/605.1.15",
    f"Mozilla/5.0 ({_IPHONE}) {_IOSWK} Version/18.6 Mobile/15E148 Safari/604.1",
    f"Mozilla/5.0 (iPhone; CPU iPhone OS 26_1 like Mac OS X) {_IOSWK} Version/26.1 Mobile/15E148 Safari/604.1",
    f"Mozilla/5.0 ({_IPAD}) {_IOSWK} Version/18.6 Mobile/15E148 Safari/604.1",
    f"Mozilla/5.0 (iPhone; CPU iPhone OS 16_7_10 like Mac OS X) {_IOSWK} Version/16.6 Mobile/15E148 Safari/604.1",
    # Edge
    f"Mozilla/5.0 ({_WIN}) {_WK} Chrome/142.0.0.0 Safari/537.36 Edg/142.0.0.0",
    f"Mozilla/5.0 ({_MAC}) {_WK} Chrome/142.0.0.0 Safari/537.36 Edg/142.0.0.0",
    f"Mozilla/5.0 ({_ANDROID}) {_WK} Chrome/142.0.0.0 Mobile Safari/537.36 EdgA/142.0.0.0",
    f"Mozilla/5.0 ({_IPHONE}) {_IOSWK} Version/18.0 EdgiOS/142.0.3595.80 Mobile/15E148 Safari/605.1.15",
    f"Mozilla/5.0 (Windows NT 10.0; Win64; x64; Xbox; Xbox One) {_WK} Chrome/142.0.0.0 Safari/537.36 Edge/44.18363.8131",
    # Samsung Internet, Opera, Yandex, Vivaldi, UC, Huawei, Xiaomi, DuckDuckGo, Brave (as Chrome)
    f"Mozilla/5.0 (Linux; Android 15; SAMSUNG SM-S931B) {_WK} SamsungBrowser/28.0 Chrome/130.0.0.0 Mobile Safari/537.36",
    f"Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-A546B) {_WK} SamsungBrowser/27.0 Chrome/125.0.0.0 Mobile Safari/537.36",
    f"Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-X710) {_WK} SamsungBrowser/27.0 Chrome/125.0.0.0 Safari/537.36",
    f"Mozilla/5.0 ({_WIN}) {_WK} Chrome/141.0.0.0 Safari/537.36 OPR/126.0.0.0",
    f"Mozilla/5.0 ({_ANDROID}) {_WK} Chrome/141.0.0.0 Mobile Safari/537.36 OPR/92.0.0.0",
    "Opera/9.80 (Android; Opera Mini/89.0.2254/191.337; U; en) Presto/2.12.423 Version/12.16",
    f"Mozilla/5.0 ({_WIN}) {_WK} Chrome/140.0.0.0 YaBrowser/25.10.0.0 Safari/537.36",
    f"Mozilla/5.0 ({_WIN}) {_WK} Chrome/142.0.0.0 Safari/537.36 Vivaldi/7.7",
    f"Mozilla/5.0 (Linux; U; Android 13; en-US; V2207 Build/TP1A.220624.014) {_WK} Version/4.0 Chrome/123.0.6312.80 UCBrowser/13.8.2.1324 Mobile Safari/537.36",
    f"Mozilla/5.0 (Linux; Android 12; HarmonyOS; ANA-AN00; HMSCore 6.14.0.302) {_WK} Chrome/114.0.5735.196 HuaweiBrowser/15.0.4.312 Mobile Safari/537.36",
    f"Mozilla/5.0 (Linux; U; Android 14; en-gb; 23129RAA4G Build/UKQ1.231003.002) {_WK} Version/4.0 Chrome/122.0.6261.119 Mobile Safari/537.36 XiaoMi/MiuiBrowser/14.21.1-gn",
    f"Mozilla/5.0 ({_ANDROID}) {_WK} Chrome/142.0.0.0 Mobile Safari/537.36 DuckDuckGo/5",
    f"Mozilla/5.0 ({_IPHONE}) {_IOSWK} Version/18.6 Mobile/15E148 DuckDuckGo/7 Safari/605.1.15",
    f"Mozilla/5.0 (Linux; Android 13; KFRAWI) {_WK} Silk/138.2.1 like Chrome/138.0.7204.157 Safari/537.36",
    f"Mozilla/5.0 (SMART-TV; Linux; Tizen 8.0) {_WK} SamsungBrowser/7.0 Chrome/108.0.5359.1 TV Safari/537.36",
    f"Mozilla/5.0 (PlayStation; PlayStation 5/9.00) {_IOSWK} Version/15.4 Safari/605.1.15",
    # in-app webviews (a person reading a page inside an app)
    f"Mozilla/5.0 ({_IPHONE}) {_IOSWK} Mobile/15E148 [FBAN/FBIOS;FBAV/520.0.0.38.101;FBBV/751234567;FBDV/iPhone16,2;FBMD/iPhone;FBSN/iOS;FBSV/18.6;FBSS/3;FBCR/;FBID/phone;FBLC/en_US;FBOP/80]",
    f"Mozilla/5.0 (Linux; Android 14; SM-S918B Build/UP1A.231005.007; wv) {_WK} Version/4.0 Chrome/142.0.7444.48 Mobile Safari/537.36 [FB_IAB/FB4A;FBAV/520.0.0.50.76;]",
    f"Mozilla/5.0 ({_IPHONE}) {_IOSWK} Mobile/15E148 Instagram 405.0.0.23.77 (iPhone16,2; iOS 18_6; en_US; en; scale=3.00; 1179x2556; 812345678; IABMV/1)",
    f"Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240905.003; wv) {_WK} Version/4.0 Chrome/142.0.7444.48 Mobile Safari/537.36 Instagram 405.0.0.43.77 Android (34/14; 420dpi; 1080x2400; Google/google; Pixel 8; shiba; shiba; en_US; 812345679)",
    f"Mozilla/5.0 ({_IPHONE}) {_IOSWK} Mobile/15E148 musical_ly_41.5.0 JsSdk/2.0 NetType/WIFI Channel/App Store ByteLocale/en Region/US isDarkMode/0 WKWebView/1 RevealType/Dialog BytedanceWebview/d8a21c6",
    f"Mozilla/5.0 (Linux; Android 14; SM-A256B Build/UP1A.231005.007; wv) {_WK} Version/4.0 Chrome/142.0.7444.48 Mobile Safari/537.36 trill_410305 JsSdk/1.0 NetType/WIFI Channel/googleplay AppName/musical_ly app_version/41.3.5 ByteLocale/en ByteFullLocale/en Region/DE BytedanceWebview/d8a21c6",
    f"Mozilla/5.0 ({_IPHONE}) {_IOSWK} Mobile/15E148 Snapchat/13.64.0.40 (like Safari/8621.1.15.10.7, panda)",
    f"Mozilla/5.0 ({_IPHONE}) {_IOSWK} Mobile/15E148 [LinkedInApp]/9.31.2013",
    f"Mozilla/5.0 ({_IPHONE}) {_IOSWK} Mobile/15E148 Twitter for iPhone/11.28",
    f"Mozilla/5.0 (Linux; Android 14; 2201116SG Build/UKQ1.231003.002; wv) {_WK} Version/4.0 Chrome/142.0.7444.48 Mobile Safari/537.36 XWEB/1300333 MMWEBSDK/20250201 MMWEBID/6533 MicroMessenger/8.0.56.2800(0x28003836) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64",
    f"Mozilla/5.0 ({_IPHONE}) {_IOSWK} Mobile/15E148 Line/15.10.0",
    f"Mozilla/5.0 ({_IPHONE}) {_IOSWK} Mobile/15E148 [Pinterest/iOS]",
    f"Mozilla/5.0 ({_IPHONE}) {_IOSWK} GSA/390.0.801234567 Mobile/15E148 Safari/604.1",
    f"Mozilla/5.0 (Linux; Android 14; Pixel 7 Build/AP2A.240905.003; wv) {_WK} Version/4.0 Chrome/142.0.7444.48 Mobile Safari/537.36 GSA/16.38.44.29.arm64",
    f"Mozilla/5.0 (Linux; Android 13; moto g power (2023) Build/T1TRS33.44-17-9; wv) {_WK} Version/4.0 Chrome/141.0.7390.122 Mobile Safari/537.36",
    f"Mozilla/5.0 ({_IPHONE}) {_IOSWK} Mobile/15E148",  # a plain WKWebView
    f"Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A.240905.003; wv) {_WK} Version/4.0 Chrome/142.0.7444.48 Mobile Safari/537.36 [Reddit/2025.44.0]",
]

BOTS = [
    # search engines
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    f"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) {_WK} Chrome/142.0.7444.59 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    f"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; Googlebot/2.1; +http://www.google.com/bot.html) Chrome/142.0.7444.59 Safari/537.36",
    "Googlebot-Image/1.0",
    f"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) {_WK} Chrome/142.0.7444.59 Mobile Safari/537.36 (compatible; AdsBot-Google-Mobile; +http://www.google.com/mobile/adsbot.html)",
    "AdsBot-Google (+http://www.google.com/adsbot.html)",
    "Mediapartners-Google",
    f"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) {_WK} Chrome/142.0.7444.59 Mobile Safari/537.36 (compatible; Google-InspectionTool/1.0;)",
    "Mozilla/5.0 (compatible; GoogleOther)",
    "Mozilla/5.0 (X11; Linux x86_64; Storebot-Google/1.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/79.0.3945.88 Safari/537.36",
    "FeedFetcher-Google; (+http://www.google.com/feedfetcher.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    f"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36",
    "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
    f"Mozilla/5.0 ({_MAC}) {_IOSWK} Version/17.4 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
    f"Mozilla/5.0 (Linux; Android 7.0;) {_WK} Mobile Safari/537.36 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
    "Mozilla/5.0 (compatible; SeznamBot/4.0; +https://o-seznam.cz/napoveda/vyhledavani/en/seznambot-crawler/)",
    # link unfurlers (chat and social previews)
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Slackbot 1.0 (+https://api.slack.com/robots)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "meta-externalagent/1.1 (+https://developers.facebook.com/docs/sharing/webmasters/crawler)",
    "Twitterbot/1.0",
    "WhatsApp/2.23.20.0 A",
    "WhatsApp/2.2540.1 i",
    "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
    "TelegramBot (like TwitterBot)",
    "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
    "Pinterestbot/1.0 (+http://www.pinterest.com/bot.html)",
    "Mozilla/5.0 (compatible; redditbot/1.0; +http://www.reddit.com/feedback)",
    "Mozilla/5.0 (compatible; Embedly/0.2; +http://support.embed.ly/)",
    "Iframely/1.3.1 (+https://iframely.com/docs/about) Atlassian",
    f"Mozilla/5.0 ({_WIN}) {_WK} Chrome/42.0.2311.135 Safari/537.36 Edge/12.10136 SkypeUriPreview Preview/0.5",
    "Mastodon/4.3.0 (http.rb/5.2.0; +https://mastodon.social/) Bot",
    "Mozilla/5.0 (compatible; Bluesky Cardyb/1.1; +mailto:support@bsky.app)",
    # HTTP libraries and tools
    "curl/8.10.1",
    "Wget/1.21.4",
    "python-requests/2.32.3",
    "Python-urllib/3.11",
    "python-httpx/0.27.2",
    "Python/3.12 aiohttp/3.10.10",
    "Go-http-client/1.1",
    "Go-http-client/2.0",
    "okhttp/4.12.0",
    "axios/1.7.7",
    "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "Java/17.0.12",
    "Apache-HttpClient/4.5.14 (Java/17.0.12)",
    "libwww-perl/6.77",
    "PostmanRuntime/7.42.0",
    "Scrapy/2.11.2 (+https://scrapy.org)",
    "HTTPie/3.2.3",
    # monitors
    "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
    f"Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/534.34 (KHTML, like Gecko) PingdomTMS/2020.2 Safari/534.34",
    "Mozilla/5.0 (compatible; StatusCake)",
    "Site24x7",
    "Datadog/Synthetics",
    "NewRelicPinger/1.0 (12345)",
    f"Mozilla/5.0 (X11; Linux x86_64) {_WK} Chrome/120.0.0.0 Safari/537.36 Chrome-Lighthouse",
    "Better Uptime Bot Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/86.0.4240.198 Safari/537.36",
    # headless browsers
    f"Mozilla/5.0 (X11; Linux x86_64) {_WK} HeadlessChrome/142.0.0.0 Safari/537.36",
    f"Mozilla/5.0 ({_WIN}) {_WK} HeadlessChrome/140.0.7339.16 Safari/537.36",
    "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
    # AI and SEO crawlers, archivers
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ChatGPT-User/1.0; +https://openai.com/bot)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
    "CCBot/2.0 (https://commoncrawl.org/faq/)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; PerplexityBot/1.0; +https://perplexity.ai/perplexitybot)",
    "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)",
    "Mozilla/5.0 (compatible; Amazonbot/0.1; +https://developer.amazon.com/support/amazonbot)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)",
    "Mozilla/5.0 (compatible; DotBot/1.2; +https://opensiteexplorer.org/dotbot; help@moz.com)",
    "Mozilla/5.0 (compatible; archive.org_bot +http://archive.org/details/archive.org_bot)",
    "ia_archiver (+http://www.alexa.com/site/help/webmasters; crawler@alexa.com)",
]
