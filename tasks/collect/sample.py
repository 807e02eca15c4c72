"""Built-in source of labeled sample social-media posts, so the pipeline runs without data.

Output depends only on the date, the count and the seed. Each random stream is seeded from a
SHA-256 digest of those values, never from Python's ``hash()``, which is salted per process.
Texts are built from templates (subject x opinion x detail x extras) in English and Chinese.
They carry the noise that later cleaning steps must handle: hashtags, emoji, @handles, links,
HTML entities, e-mail addresses, phone numbers and "RT @user:" prefixes.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import random
import string
from dataclasses import asdict, dataclass

SENTIMENT_LABELS: tuple[str, ...] = ("negative", "neutral", "positive")

# Target shares: labels 35 / 30 / 35 percent, 15 percent Chinese posts.
LABEL_SHARES: dict[str, float] = {"negative": 0.35, "neutral": 0.30, "positive": 0.35}
LANG_SHARES: dict[str, float] = {"en": 0.85, "zh": 0.15}

DUPLICATE_SHARE = 0.03
REPOST_SHARE = 0.01
LONG_TEXT_CHARS = 50_000

# Kinds of malformed line that generate_raw_lines emits, one line of each.
MALFORMED_KINDS: tuple[str, ...] = (
    "invalid_json",
    "missing_text",
    "empty_text",
    "whitespace_text",
    "invalid_utf8",
    "long_text",
)

# Relative posting activity per UTC hour, low at night and high in the evening.
HOUR_WEIGHTS: tuple[int, ...] = (
    3, 2, 1, 1, 1, 2, 3, 5, 7, 7, 6, 6,
    7, 7, 6, 6, 7, 8, 9, 10, 10, 9, 7, 5,
)


@dataclass(frozen=True)
class SamplePost:
    """One well-formed, labeled sample post."""

    id: str
    text: str
    created_at: str
    author: str
    lang: str
    label: str


@dataclass(frozen=True)
class _Topic:
    """Vocabulary for one topic: subjects, accounts, hashtags and a detail sentence per label."""

    subjects: tuple[str, ...]
    handles: tuple[str, ...]
    hashtags: tuple[str, ...]
    details: dict[str, tuple[str, ...]]


ENGLISH_TOPICS: tuple[_Topic, ...] = (
    _Topic(
        subjects=("the new Pixel 9", "my Kindle", "these AirPods", "the Dyson vacuum",
                  "this air fryer", "the new MacBook", "my smartwatch"),
        handles=("@AppleSupport", "@madebygoogle", "@AmazonHelp", "@Dyson"),
        hashtags=("#tech", "#gadgets", "#review", "#unboxing"),
        details={
            "negative": ("Battery dies before lunch.", "Returned it after two days.",
                         "Customer support keeps sending me in circles.",
                         "It froze twice during setup and the charger runs hot."),
            "neutral": ("Comparing it with last year's model this weekend.",
                        "Does it ship with a charger?", "Price drops next week apparently.",
                        "Firmware 2.1 rolls out tomorrow."),
            "positive": ("Battery easily lasts two days.", "Setup took five minutes.",
                         "Support replaced it within a day, no questions asked.",
                         "Worth every penny and then some."),
        },
    ),
    _Topic(
        subjects=("the Spotify update", "the new Instagram layout", "Duolingo",
                  "my banking app", "the Uber app", "Notion", "the new Maps redesign"),
        handles=("@SpotifyCares", "@Uber_Support", "@duolingo", "@NotionHQ"),
        hashtags=("#app", "#update", "#ios", "#android"),
        details={
            "negative": ("It crashes every time I open it.", "Logged me out three times today.",
                         "Why hide the settings behind four menus?",
                         "Dark mode is gone and nobody asked for that."),
            "neutral": ("Version 8.4 is rolling out today.", "Is the web version affected too?",
                        "Release notes are in the store listing.",
                        "Trying the beta on my old phone."),
            "positive": ("Finally loads in under a second.", "The new widgets are so handy.",
                         "Offline mode works perfectly on the train.",
                         "Whoever designed the new search deserves a raise."),
        },
    ),
    _Topic(
        subjects=("my Delta flight", "the United crew", "the flight to Denver",
                  "JetBlue", "check-in at SFO", "the red-eye to Boston"),
        handles=("@delta_help", "@united_support", "@jetblue_care", "@flySFO"),
        hashtags=("#travel", "#flight", "#airport", "#avgeek"),
        details={
            "negative": ("Delayed three hours and not a single update.",
                         "They lost my bag again.", "Gate changed twice and nobody told us.",
                         "Sat on the tarmac for 90 minutes with no water."),
            "neutral": ("Boarding starts at 6:40 from gate B12.", "Is the lounge open this early?",
                        "Flight 1123 now departs at 9:05.", "Anyone know the carry-on rules?"),
            "positive": ("Landed 20 minutes early.", "The crew upgraded us for our anniversary.",
                         "Smoothest boarding I've ever had.",
                         "Free snacks and the wifi actually worked."),
        },
    ),
    _Topic(
        subjects=("the Lakers", "last night's game", "the Warriors defense", "Arsenal",
                  "the refereeing tonight", "the new coach", "our quarterback"),
        handles=("@Lakers", "@warriors", "@Arsenal", "@NFL"),
        hashtags=("#NBA", "#COYG", "#GameDay", "#NFL"),
        details={
            "negative": ("Blew a 15-point lead in the fourth.", "Three turnovers in two minutes.",
                         "That call was a joke.", "Season is basically over."),
            "neutral": ("Tip-off is at 7:30 ET.", "Who starts at point guard tonight?",
                        "Injury report comes out at noon.",
                        "Tickets for the home opener go on sale Friday."),
            "positive": ("What a comeback in the second half!", "Defense was locked in all night.",
                         "Best game I've seen all season.",
                         "Rookie dropped 30 and looked calm doing it."),
        },
    ),
    _Topic(
        subjects=("this weather", "the storm", "today's forecast", "the weekend weather",
                  "the weather in Seattle", "this fog"),
        handles=("@NWS", "@weatherchannel", "@NWSSeattle"),
        hashtags=("#weather", "#wawx", "#forecast", "#stormwatch"),
        details={
            "negative": ("My commute took two hours.", "Power has been out since 6am.",
                         "Soaked through in five minutes.",
                         "Half the flights out of here are cancelled."),
            "neutral": ("Highs around 64 with clouds in the afternoon.",
                        "Is the storm still expected tonight?", "Schools open on time tomorrow.",
                        "Wind advisory until 8pm."),
            "positive": ("Perfect day for a walk by the water.", "Blue skies all weekend.",
                         "Kids are loving it outside.", "Finally some sunshine."),
        },
    ),
    _Topic(
        subjects=("the Taylor Swift show", "the Coldplay concert", "the opening act",
                  "the sound at the arena", "the jazz night downtown", "the festival lineup"),
        handles=("@taylornation13", "@coldplay", "@LiveNation", "@Ticketmaster"),
        hashtags=("#concert", "#livemusic", "#ErasTour", "#festival"),
        details={
            "negative": ("Waited 90 minutes to get in.", "Ticket fees were more than the ticket.",
                         "Could barely hear the vocals from section 204.",
                         "They cut the encore short."),
            "neutral": ("Doors open at 6, show at 8.", "Is there a bag policy?",
                        "Setlist is up on the fan site.", "Parking lot C closes at midnight."),
            "positive": ("The encore gave me chills.", "Sang every word with 50,000 people.",
                         "Best night of the year so far.", "The light show was unreal."),
        },
    ),
    _Topic(
        subjects=("the L train", "BART", "the 38 bus", "the subway", "Muni", "the new tram line"),
        handles=("@MTA", "@SFBART", "@sfmta_muni", "@NYCTSubway"),
        hashtags=("#commute", "#transit", "#MTA", "#BART"),
        details={
            "negative": ("Twenty minutes late again.", "Packed like sardines at 8am.",
                         "Signal problems for the third day in a row.",
                         "The elevator at my station has been broken for a month."),
            "neutral": ("Weekend service changes start Saturday.", "Does the night bus still run?",
                        "Fares go up by 25 cents next month.", "Station renovation begins in May."),
            "positive": ("Got a seat and arrived early.", "The new trains are so quiet.",
                         "Staff helped me find my lost wallet.",
                         "Trains every 4 minutes this morning."),
        },
    ),
    _Topic(
        subjects=("the city budget vote", "the election results", "the bridge reopening",
                  "the new bike lanes", "the housing bill", "the library expansion"),
        handles=("@CityHall", "@nytimes", "@AP", "@localnews"),
        hashtags=("#news", "#breaking", "#localpolitics", "#cityhall"),
        details={
            "negative": ("Another delay and another cost overrun.", "Nobody asked the residents.",
                         "This will hurt small businesses.", "Same promises as last year."),
            "neutral": ("Council meets Tuesday at 10am.", "Full text of the proposal is online.",
                        "Public comment closes on the 15th.", "What does this mean for renters?"),
            "positive": ("About time something got done.", "Finally a win for the neighborhood.",
                         "Great to see people working together on this.",
                         "This will help so many families."),
        },
    ),
    _Topic(
        subjects=("the ramen at Ippudo", "this new taco place", "the coffee at Blue Bottle",
                  "my pizza delivery", "the brunch spot on 5th", "the food truck by my office"),
        handles=("@DoorDash_Help", "@UberEats", "@bluebottle", "@Yelp"),
        hashtags=("#foodie", "#brunch", "#tacotuesday", "#eats"),
        details={
            "negative": ("Cold and 45 minutes late.", "Overpriced and bland.",
                         "Found a hair in my soup.",
                         "Waited an hour and they forgot half the order."),
            "neutral": ("Open until 10 on weekdays.", "Do they take reservations?",
                        "New menu drops next week.", "Trying the vegan option tomorrow."),
            "positive": ("Broth was rich and perfectly seasoned.",
                         "Best tacos in the city, hands down.",
                         "Staff remembered my order.", "Worth the wait in line."),
        },
    ),
)

ENGLISH_OPINIONS: dict[str, tuple[str, ...]] = {
    "negative": (
        "{subject} {is} a complete mess.",
        "Really disappointed with {subject}.",
        "{subject} {was} not good at all.",
        "Not impressed by {subject}.",
        "Why {is} {subject} always this bad?",
        "{subject} ruined my day.",
        "Worst experience with {subject}, never again.",
        "{subject} {was} a bit underwhelming, honestly.",
        "Hey {handle}, what is going on with {subject}? Nobody is answering.",
        "So tired of {subject}.",
        "{subject} {is} so overrated.",
        "Can't believe how bad {subject} {was}.",
        "I really wanted to like {subject}, but no.",
        "{subject} could have been a lot better.",
    ),
    "neutral": (
        "Anyone tried {subject} yet?",
        "Catching up on {subject} later.",
        "Reading up on {subject} before deciding.",
        "Just saw a long thread about {subject}.",
        "Thoughts on {subject}?",
        "Not sure what to make of {subject} yet.",
        "Quick question for {handle} about {subject}.",
        "Here's the latest on {subject}.",
        "Reminder: info on {subject} is posted.",
        "Writing a short post about {subject} tonight.",
        "Any news on {subject}?",
        "Update on {subject}:",
    ),
    "positive": (
        "{subject} {is} honestly amazing!",
        "Really impressed with {subject}.",
        "{subject} {was} not bad at all, actually pretty great.",
        "Can't complain about {subject}, everything went smoothly.",
        "Loving {subject} so far!",
        "{subject} made my day.",
        "Big thanks to {handle}, {subject} exceeded expectations.",
        "{subject} {was} better than I expected.",
        "Pleasantly surprised by {subject}.",
        "Five stars for {subject}, would recommend.",
        "{subject} {was} pretty decent.",
        "Not gonna lie, {subject} {is} kind of awesome!",
        "Honestly, {subject} never {disappoints}.",
        "So happy with {subject}!",
    ),
}

CHINESE_TOPICS: tuple[_Topic, ...] = (
    _Topic(
        subjects=("今天的演唱会", "周末的音乐节", "这场演出"),
        handles=("@大麦网", "@摩登天空"),
        hashtags=("#演唱会#", "#音乐节#"),
        details={
            "negative": ("排队两个小时才进场。", "音响效果很差，根本听不清。"),
            "neutral": ("几点开始检票？", "票务信息已经公布了。"),
            "positive": ("全场大合唱，太感动了。", "安可唱了三首！"),
        },
    ),
    _Topic(
        subjects=("地铁", "二号线", "早高峰的公交", "新开的有轨电车"),
        handles=("@北京地铁", "@上海地铁shmetro"),
        hashtags=("#地铁#", "#通勤#"),
        details={
            "negative": ("又晚点了二十分钟。", "早高峰挤得喘不过气。"),
            "neutral": ("下周起调整运营时间。", "末班车是几点？"),
            "positive": ("今天一路畅通。", "新车厢又干净又安静。"),
        },
    ),
    _Topic(
        subjects=("这家火锅店", "楼下新开的奶茶店", "今天的外卖", "这家面馆"),
        handles=("@美团外卖", "@大众点评"),
        hashtags=("#美食#", "#外卖#"),
        details={
            "negative": ("等了一个小时，菜都凉了。", "又贵又难吃。"),
            "neutral": ("周一到周五营业到晚上十点。", "需要提前订位吗？"),
            "positive": ("味道绝了，还会再来。", "服务员特别热情。"),
        },
    ),
    _Topic(
        subjects=("新买的手机", "这款耳机", "扫地机器人", "新版微信"),
        handles=("@小米公司", "@华为终端"),
        hashtags=("#数码#", "#开箱#"),
        details={
            "negative": ("用了两天就卡得不行。", "电池一天要充三次。"),
            "neutral": ("下周推送系统更新。", "有没有人用过同款？"),
            "positive": ("续航真的顶。", "拍照效果出乎意料地好。"),
        },
    ),
    _Topic(
        subjects=("这次航班", "东航的服务", "机场安检", "去成都的高铁"),
        handles=("@东方航空", "@中国铁路12306"),
        hashtags=("#出行#", "#机场#"),
        details={
            "negative": ("延误了三个小时也没人解释。", "行李又被摔坏了。"),
            "neutral": ("登机口改到了B12。", "春运车票明天开售。"),
            "positive": ("提前二十分钟到达。", "乘务员服务很贴心。"),
        },
    ),
    _Topic(
        subjects=("昨晚的比赛", "国足", "这场球", "主队的防守"),
        handles=("@中超联赛", "@CBA"),
        hashtags=("#中超#", "#篮球#"),
        details={
            "negative": ("最后五分钟被连进两球。", "裁判的判罚太离谱。"),
            "neutral": ("今晚七点半开球。", "首发名单公布了吗？"),
            "positive": ("绝杀！太刺激了！", "下半场踢得很漂亮。"),
        },
    ),
    _Topic(
        subjects=("这天气", "这场大雨", "今天的空气", "这波降温"),
        handles=("@中国天气", "@北京气象"),
        hashtags=("#天气#", "#降温#"),
        details={
            "negative": ("出门五分钟就湿透了。", "冷得手都僵了。"),
            "neutral": ("明天最高气温十八度。", "周末会下雨吗？"),
            "positive": ("阳光正好，适合出去走走。", "终于凉快下来了。"),
        },
    ),
)

CHINESE_OPINIONS: dict[str, tuple[str, ...]] = {
    "negative": (
        "{subject}太让人失望了。",
        "{subject}又出问题了，真让人生气！",
        "{subject}简直糟透了。",
        "对{subject}很不满意。",
        "{subject}一点都不好。",
        "受够了{subject}！",
        "{subject}真的不怎么样。",
        "说实话{subject}有点差劲。",
    ),
    "neutral": (
        "有人关注{subject}吗？",
        "{subject}有什么最新消息吗？",
        "刚看到有人在讨论{subject}。",
        "关于{subject}，大家怎么看？",
        "{subject}，大家觉得怎么样？",
        "mark一下{subject}的消息。",
    ),
    "positive": (
        "{subject}太棒了！",
        "{subject}真的很不错，推荐！",
        "{subject}比想象中好多了。",
        "{subject}还不错嘛。",
        "对{subject}非常满意，点赞！",
        "{subject}让人心情大好～",
        "没想到{subject}这么好，惊喜！",
        "{subject}一点都不差，挺好的。",
    ),
}

EMOJI_BY_LABEL: dict[str, tuple[str, ...]] = {
    "negative": ("😡", "😞", "👎", "😤", "🙄", "💔", "😩"),
    "neutral": ("🤔", "📢", "👀", "📅", "🚆", "☕"),
    "positive": ("😍", "🎉", "👍", "🙌", "😊", "✨", "🔥"),
}

# Weibo renders these bracket codes as emoticons.
WEIBO_EMOTICONS_BY_LABEL: dict[str, tuple[str, ...]] = {
    "negative": ("[怒]", "[失望]", "[泪]"),
    "neutral": ("[思考]", "[吃瓜]"),
    "positive": ("[赞]", "[哈哈]", "[爱你]"),
}

HASHTAGS_BY_LABEL: dict[str, tuple[str, ...]] = {
    "negative": ("#fail", "#annoyed", "#neveragain", "#ugh"),
    "neutral": ("#PSA", "#question", "#update"),
    "positive": ("#blessed", "#happy", "#love", "#winning"),
}

# English subjects that take plural verbs, so {is} and {was} in the templates become are/were.
PLURAL_SUBJECTS: frozenset[str] = frozenset(
    {"these AirPods", "the Lakers", "the election results", "the new bike lanes"}
)

EMAIL_DOMAINS: tuple[str, ...] = ("gmail.com", "yahoo.com", "outlook.com", "example.com")
FIRST_NAMES: tuple[str, ...] = ("jane", "mike", "priya", "carlos", "li.wei", "sam")


def generate_posts(day: datetime.date, count: int = 400, seed: int = 0) -> list[SamplePost]:
    """Generate well-formed labeled posts for one UTC day, sorted by created_at.

    About 15% of posts are Chinese and the rest English. Labels follow fixed quotas of
    35% negative, 30% neutral and 35% positive, rounded to whole posts. A datetime is
    truncated to its date. Ids are unique within one (day, seed) and include the seed
    when it is not 0, so different seeds never share ids.
    """
    day = _validate_arguments(day, count)
    rng = _make_rng(day, seed, "posts")
    labels = _draw_quota(rng, count, LABEL_SHARES)
    langs = _draw_quota(rng, count, LANG_SHARES)
    timestamps = _draw_timestamps(rng, day, count)
    prefix = _make_id_prefix(day, seed)

    posts = []
    for index, (label, lang, timestamp) in enumerate(zip(labels, langs, timestamps)):
        posts.append(
            SamplePost(
                id=f"{prefix}{index:05d}",
                text=_compose_text(rng, lang, label),
                created_at=_format_timestamp(timestamp),
                author=_make_author(rng),
                lang=lang,
                label=label,
            )
        )
    return posts


def generate_raw_lines(day: datetime.date, count: int = 400, seed: int = 0) -> list[bytes]:
    """Generate the day's posts as unlabeled JSON Lines, with duplicates and malformed lines.

    Each well-formed line is a UTF-8 JSON object with id, text, created_at, author and lang.
    The lines contain, at deterministic positions:
    - a second, byte-identical copy of about 3% of posts (at least one when count > 0);
    - about 1% re-posts (at least one when count > 0) that reuse a post's text under a new
      id ending in "-repost-NNN", a new author and a later timestamp;
    - one line of each kind in MALFORMED_KINDS.
    No line ends with a newline.
    """
    day = _validate_arguments(day, count)
    rng = _make_rng(day, seed, "raw")
    posts = generate_posts(day, count, seed)

    lines = [_encode_record(_make_record(post)) for post in posts]
    _insert_duplicates(rng, lines, count)
    for line in _build_reposts(rng, posts, _make_id_prefix(day, seed)):
        _insert_at_random(rng, lines, line)
    for line in _build_malformed_lines(rng, day, seed):
        _insert_at_random(rng, lines, line)
    return lines


def gold_labels(day: datetime.date, count: int = 400, seed: int = 0) -> dict[str, str]:
    """Return post id -> sentiment label for generate_posts with the same arguments."""
    return {post.id: post.label for post in generate_posts(day, count, seed)}


def _validate_arguments(day: datetime.date, count: int) -> datetime.date:
    """Return day as a plain date, or raise TypeError/ValueError for invalid arguments."""
    if isinstance(day, datetime.datetime):
        day = day.date()
    if not isinstance(day, datetime.date):
        raise TypeError(f"day must be a datetime.date, got {type(day).__name__}: {day!r}")
    if isinstance(count, bool) or not isinstance(count, int):
        raise TypeError(f"count must be an int, got {type(count).__name__}: {count!r}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    return day


def _make_rng(day: datetime.date, seed: int, stream: str) -> random.Random:
    """Create a random generator seeded from a SHA-256 digest of day, seed and stream name."""
    key = f"social-pulse-sample|{day.isoformat()}|{seed}|{stream}".encode()
    digest = hashlib.sha256(key).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def _make_id_prefix(day: datetime.date, seed: int) -> str:
    if seed == 0:
        return f"sample-{day.isoformat()}-"
    return f"sample-{day.isoformat()}-s{seed}-"


def _draw_quota(rng: random.Random, count: int, shares: dict[str, float]) -> list[str]:
    """Return count values in shuffled order, each value repeated round(share * count) times.

    The last value takes the remainder, so the total is always exactly count.
    """
    values = list(shares)
    sizes = [round(shares[value] * count) for value in values[:-1]]
    sizes.append(max(0, count - sum(sizes)))

    drawn = []
    for value, size in zip(values, sizes):
        drawn.extend([value] * size)
    drawn = drawn[:count]
    rng.shuffle(drawn)
    return drawn


def _draw_timestamps(rng: random.Random, day: datetime.date, count: int) -> list[datetime.datetime]:
    """Draw count sorted UTC timestamps within day, weighted by HOUR_WEIGHTS."""
    midnight = datetime.datetime.combine(day, datetime.time(), tzinfo=datetime.UTC)
    hours = rng.choices(range(24), weights=HOUR_WEIGHTS, k=count)
    offsets = sorted(hour * 3600 + rng.randrange(3600) for hour in hours)
    return [midnight + datetime.timedelta(seconds=offset) for offset in offsets]


def _format_timestamp(timestamp: datetime.datetime) -> str:
    return timestamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _make_author(rng: random.Random) -> str:
    return f"user_{rng.randrange(1000, 10000)}"


def _compose_text(rng: random.Random, lang: str, label: str) -> str:
    if lang == "zh":
        return _compose_chinese_text(rng, label)
    return _compose_english_text(rng, label)


def _compose_english_text(rng: random.Random, label: str) -> str:
    """Compose an English post: opinion, optional topic detail, then random extras."""
    topic = rng.choice(ENGLISH_TOPICS)
    handle = rng.choice(topic.handles)
    subject = rng.choice(topic.subjects)
    opinion = _fill_english_template(rng.choice(ENGLISH_OPINIONS[label]), subject, handle)
    sentences = [_capitalize_first(opinion)]
    if rng.random() < 0.65:
        sentences.append(rng.choice(topic.details[label]))
    text = " ".join(sentences)

    text = _add_emoji(rng, text, label)
    text = _add_english_hashtags(rng, text, label, topic)
    text = _add_english_noise(rng, text, handle)
    return text


def _fill_english_template(template: str, subject: str, handle: str) -> str:
    plural = subject in PLURAL_SUBJECTS
    return template.format(
        subject=subject,
        handle=handle,
        disappoints="disappoint" if plural else "disappoints",
        **{"is": "are" if plural else "is", "was": "were" if plural else "was"},
    )


def _add_emoji(rng: random.Random, text: str, label: str) -> str:
    """Append emoji to text, sometimes glued to the last word ("awesome😍")."""
    if rng.random() >= 0.45:
        return text
    pool = EMOJI_BY_LABEL[label] if rng.random() < 0.9 else EMOJI_BY_LABEL["neutral"]
    emoji = rng.choice(pool) * rng.choice((1, 1, 1, 2, 3))
    if rng.random() < 0.4:
        return text.rstrip(".!") + emoji
    return f"{text} {emoji}"


def _add_english_hashtags(rng: random.Random, text: str, label: str, topic: _Topic) -> str:
    if rng.random() >= 0.4:
        return text
    tags = [rng.choice(topic.hashtags)]
    if rng.random() < 0.5:
        tags.append(rng.choice(HASHTAGS_BY_LABEL[label]))
    return f"{text} {' '.join(tags)}"


def _add_english_noise(rng: random.Random, text: str, handle: str) -> str:
    """Add mentions, links, HTML entities, contact details and retweet prefixes at random."""
    if handle not in text and rng.random() < 0.15:
        text = f"{handle} {text}"
    if rng.random() < 0.2:
        text = f"{text} {_make_link(rng)}"
    if rng.random() < 0.08:
        text = _add_html_entity(rng, text)
    if rng.random() < 0.03:
        text = f"{text} Questions? Email {_make_email(rng)}"
    if rng.random() < 0.03:
        text = f"{text} Call {_make_us_phone(rng)} for help."
    if rng.random() < 0.07:
        text = f"RT @user_{rng.randrange(1000, 10000)}: {text}"
    return text


def _add_html_entity(rng: random.Random, text: str) -> str:
    """Add an HTML-escaped character, as some APIs return text with &amp;, &lt; and &gt;."""
    if " and " in text:
        return text.replace(" and ", " &amp; ", 1)
    return f"{text} {rng.choice(('&lt;3', 'More details &amp; photos soon', '&gt;&gt; thread'))}"


def _make_link(rng: random.Random) -> str:
    token = "".join(rng.choices(string.ascii_letters + string.digits, k=10))
    templates = (
        "https://t.co/{token}",
        "https://t.co/{token}",
        "http://bit.ly/{short}",
        "https://www.example.com/news/{short}",
    )
    return rng.choice(templates).format(token=token, short=token[:7].lower())


def _make_email(rng: random.Random) -> str:
    return f"{rng.choice(FIRST_NAMES)}{rng.randrange(10, 100)}@{rng.choice(EMAIL_DOMAINS)}"


def _make_us_phone(rng: random.Random) -> str:
    """Make a US number in the 555-0100..0199 range, which is reserved for fiction."""
    area = rng.choice((212, 312, 415, 617, 646, 206))
    return f"+1 {area}-555-01{rng.randrange(100):02d}"


def _make_chinese_mobile(rng: random.Random) -> str:
    return f"1{rng.choice('3456789')}{rng.randrange(10**9):09d}"


def _compose_chinese_text(rng: random.Random, label: str) -> str:
    """Compose a Weibo-style post: opinion, optional detail, then random extras."""
    topic = rng.choice(CHINESE_TOPICS)
    text = rng.choice(CHINESE_OPINIONS[label]).format(subject=rng.choice(topic.subjects))
    if rng.random() < 0.6:
        text += rng.choice(topic.details[label])

    if rng.random() < 0.35:
        text = f"{rng.choice(topic.hashtags)}{text}"
    if rng.random() < 0.4:
        text += _draw_chinese_emoji(rng, label)
    if rng.random() < 0.12:
        text = f"{rng.choice(topic.handles)} {text}"
    if rng.random() < 0.1:
        text += f" http://t.cn/{''.join(rng.choices(string.ascii_letters + string.digits, k=7))}"
    if rng.random() < 0.04:
        text += f"咨询电话：{_make_chinese_mobile(rng)}"
    if rng.random() < 0.05:
        text = f"转发微博 //@user_{rng.randrange(1000, 10000)}:{text}"
    return text


def _draw_chinese_emoji(rng: random.Random, label: str) -> str:
    if rng.random() < 0.4:
        return rng.choice(WEIBO_EMOTICONS_BY_LABEL[label])
    return rng.choice(EMOJI_BY_LABEL[label])


def _capitalize_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _make_record(post: SamplePost) -> dict[str, str]:
    record = asdict(post)
    del record["label"]
    return record


def _encode_record(record: dict[str, object]) -> bytes:
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


def _insert_at_random(rng: random.Random, lines: list[bytes], line: bytes) -> None:
    lines.insert(rng.randint(0, len(lines)), line)


def _insert_duplicates(rng: random.Random, lines: list[bytes], count: int) -> None:
    """Insert a second copy of about DUPLICATE_SHARE of lines, each after its original."""
    if count == 0:
        return
    size = max(1, round(count * DUPLICATE_SHARE))
    for line in rng.sample(lines[:count], size):
        original_index = lines.index(line)
        lines.insert(rng.randint(original_index + 1, len(lines)), line)


def _build_reposts(rng: random.Random, posts: list[SamplePost], prefix: str) -> list[bytes]:
    """Build re-posts of random posts: same text and lang, new id and author, same or later time."""
    if not posts:
        return []
    size = max(1, round(len(posts) * REPOST_SHARE))
    reposts = []
    for number, post in enumerate(rng.sample(posts, size)):
        created_at = datetime.datetime.strptime(post.created_at, "%Y-%m-%dT%H:%M:%SZ")
        end_of_day = created_at.replace(hour=23, minute=59, second=59)
        delay = rng.randint(0, int((end_of_day - created_at).total_seconds()))
        record = {
            "id": f"{prefix}repost-{number:03d}",
            "text": post.text,
            "created_at": _format_timestamp(created_at + datetime.timedelta(seconds=delay)),
            "author": _make_author(rng),
            "lang": post.lang,
        }
        reposts.append(_encode_record(record))
    return reposts


def _build_malformed_lines(rng: random.Random, day: datetime.date, seed: int) -> list[bytes]:
    """Build one line per MALFORMED_KINDS entry, in that order."""
    prefix = _make_id_prefix(day, seed)
    records = {
        kind: _make_malformed_record(rng, day, f"{prefix}bad-{kind}") for kind in MALFORMED_KINDS
    }
    records["invalid_json"]["text"] = "Great show tonight!"
    del records["missing_text"]["text"]
    records["empty_text"]["text"] = ""
    records["whitespace_text"]["text"] = "  \t \n  "
    records["invalid_utf8"]["text"] = "Caf@@ was packed tonight"
    long_text = "Thread 1/200: the full story of my trip. " * 1300
    records["long_text"]["text"] = long_text[:LONG_TEXT_CHARS]

    lines = {kind: _encode_record(record) for kind, record in records.items()}
    # Cutting a JSON object in half always leaves it unclosed, so the line cannot parse.
    lines["invalid_json"] = lines["invalid_json"][: len(lines["invalid_json"]) // 2]
    # 0xFF and 0xFE never occur in UTF-8, so the line cannot be decoded.
    lines["invalid_utf8"] = lines["invalid_utf8"].replace(b"@@", b"\xff\xfe")
    return [lines[kind] for kind in MALFORMED_KINDS]


def _make_malformed_record(rng: random.Random, day: datetime.date, post_id: str) -> dict[str, str]:
    midnight = datetime.datetime.combine(day, datetime.time())
    created_at = midnight + datetime.timedelta(seconds=rng.randrange(86_400))
    return {
        "id": post_id,
        "text": "placeholder",
        "created_at": _format_timestamp(created_at),
        "author": _make_author(rng),
        "lang": "en",
    }
