"""PII redaction of a command before it leaves the device: people's names, phone numbers, emails,
street addresses and codes (door and alarm codes, PINs, passwords, card numbers) become typed
placeholders (`<PERSON>`, `<PHONE>`, `<EMAIL>`, `<ADDRESS>`, `<CODE>`). What the assistant needs stays:
the home's entity, area and floor names ("Anna's Room" is a room, not a person) and the numbers of
settings ("21 degrees", "50 percent", "5 minutes").

No model: offline there is no NER model to load (presidio's default needs a spaCy download). Instead,
checked patterns: emails by their shape, card numbers by the Luhn check, phone numbers by Google's
libphonenumber metadata (`phonenumbers`) for the regions given, addresses by a house number next to a
street word, codes by the word that announces them; and people by the US Census 1990 name lists (the
`names` package: 5,163 given names, 88,799 family names) together with the cues people use around a
name ("call X", "tell X", "X's number", "my neighbor X", capitals in mid-sentence). Run
`benchmarks/pii_redaction.py` for what it catches on a test set whose names come from another source.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from edgeslm.errors import EdgeslmError

TYPES = ("PERSON", "PHONE", "EMAIL", "ADDRESS", "CODE")
# Where a home's phone numbers are usually from; international "+CC ..." numbers are found whatever this is.
DEFAULT_REGIONS = ("US", "GB", "CA", "AU", "DE", "FR", "ES", "IT", "NL", "IN")


class PiiError(EdgeslmError):
    """The redactor cannot run (a missing package), said with what to install."""


@dataclass(frozen=True)
class PiiSpan:
    start: int  # in the original text
    end: int
    type: str
    value: str


@dataclass(frozen=True)
class Redaction:
    text: str  # what may leave the device
    spans: tuple[PiiSpan, ...]  # what was taken out, in order

    def restore(self, value: str) -> str:
        """Put the originals back into a reply's text (a message, a list item): the n-th `<PERSON>` in
        `value` becomes the n-th person taken out. Only on the device, after the reply came back."""
        seen: dict[str, int] = {}

        def back(m: re.Match) -> str:
            kind = m.group(1)
            of_kind = [s.value for s in self.spans if s.type == kind]
            i = seen.get(kind, 0)
            seen[kind] = i + 1
            return of_kind[i] if i < len(of_kind) else m.group(0)

        return _PLACEHOLDER.sub(back, value)


# -- patterns ---------------------------------------------------------------------------------------
_PLACEHOLDER = re.compile(r"<(PERSON|PHONE|EMAIL|ADDRESS|CODE)>")
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
# digit runs with separators, for the phone checks (libphonenumber decides; these are the fallbacks)
_DIGITS = re.compile(r"(?<![\w+])\+?\(?\d[\d ().-]{5,}\d(?![\w])")
_LOCAL_PHONE = re.compile(r"(?<![\w.-])\d{3}[-.]\d{4}(?![\w-])")  # 555-0142: a US local number, never a setting
_PHONE_CUE = re.compile(r"\b(call|dial|ring|phone|text|sms|whatsapp|fax|number|cell|mobile|contact|reach)\b", re.I)
_CODE_CUE = re.compile(r"\b(codes?|pin|pins|passcode|passcodes|pass code|combination|security code|pin number)\b"
                       r"((?:\s+(?:is|was|to|with|of|number|:|=|now|be|it's|its|as|should|for \w+))*)\s*[:=]?\s*"
                       r"(?P<code>[#*]?[A-Za-z0-9]*\d[A-Za-z0-9#*]*(?:[ -]\d+)*)", re.I)
_PASSWORD_CUE = re.compile(r"\b(password|passwd|passphrase|pass word|wifi key|wi-fi key)\b"
                           r"((?:\s+(?:is|was|to|with|of|:|=|now|be|it's|its|as|should))*)\s*[:=]?\s*"
                           r"(?P<code>[^\s,;]+)", re.I)
_LONG_NUMBER = re.compile(r"(?<![\w.])\d{6,}(?![\w.])")  # account or member numbers; no setting goes past 10000
STREET = ("street|st|avenue|ave|av|road|rd|lane|ln|boulevard|blvd|drive|dr|way|court|ct|place|pl|terrace|ter|"
          "parkway|pkwy|crescent|cres|close|gardens|square|sq|highway|hwy|circle|cir|trail|row|walk|hill|"
          "alley|mews|grove|corniche|loop|plaza|esplanade|embankment|quay|wharf|green|rise|view|park")
_STREET_FIRST = re.compile(  # 221B Baker Street, 4410 W 38th Ave, 55 Elm Street, Apt 4B
    r"(?<![\w.-])\d{1,6}[A-Za-z]?(?:-\d{1,4}){0,2}\s+"
    r"(?P<words>(?:[^\W\d_][\w'.-]*\s+|\d{1,3}(?:st|nd|rd|th)\s+|[NSEW]{1,2}\s+){0,4}?)"
    rf"(?:{STREET})\b\.?(?:\s+(?:NW|NE|SW|SE|N|S|E|W)\b)?", re.I)
_COMPOUND = r"[^\W\d_]+(?:strasse|straße|str\.|gasse|weg|platz|damm|allee|gracht|straat|laan|vej|gatan|gata|veien)"
_STREET_SUFFIX = re.compile(  # Hauptstrasse 5, Kurfurstendamm 21, Prinsengracht 263; 77 Lindenallee; 303 Kingsway
    rf"(?<![\w-])(?:{_COMPOUND}\s+\d{{1,5}}[A-Za-z]?\b|\d{{1,5}}[A-Za-z]?\s+(?:{_COMPOUND}|[^\W\d_]{{2,}}(?:way|gate)\b))",
    re.I)
_STREET_WORD_FIRST = re.compile(  # 14 Rue de Rivoli / Calle Mayor 12 / Av. Reforma 222
    r"(?<![\w-])(?:\d{1,5}\s+)?(?:rue|rua|calle|carrer|via|viale|piazza|corso|avenida|av\.|avenue|boulevard|"
    r"chemin|place|plaza|praça|largo|strada|ulica|ul\.)\s+(?:(?:de|del|della|des|du|la|le|das|do|da|dos)\s+)?"
    r"[^\W\d_][\w'-]*(?:\s+[^\W\d_][\w'-]*){0,2}?(?:\s+\d{1,5}[A-Za-z]?\b)?", re.I)
_STREET_ASIAN = re.compile(  # 2-1-1 Nihonbashi, 88 Gangnam-daero
    r"(?<![\w-])\d{1,4}(?:-\d{1,4}){0,3}\s+[^\W\d_]+(?:-(?:daero|ro|gil|dong|ku|machi|cho|chome))?\b", re.I)
_UNIT = re.compile(r"\s*,?\s*(?:apt\.?|apartment|unit|suite|ste\.?|flat|#)\s*#?\w{1,5}\b", re.I)
_POSTCODE = re.compile(r"\s+(?:\d{5}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2})\b", re.I)  # US ZIP, UK postcode
_ADDRESS_PART = re.compile(r",\s*([^,]{1,40}?)(?=\s*(?:,|$|\s(?:in|at|for|and|then|please|tomorrow|today|to)\b|[.?!]))")
_NOT_ADDRESS = set("the a an and or to in on at for of with is it my your our me you set turn then please minutes "
                   "degrees percent from by when if".split())
_MORE_STREET = re.compile(rf"\s+(?:(?:{STREET})\b\.?|(?:north|south|east|west|NW|NE|SW|SE)\b)", re.I)
_TIME = re.compile(r"\b\d{1,2}:\d{2}\b")
_WORD = re.compile(r"(?<![\w'’-])[^\W\d_]+(?:['’.-][^\W\d_]+)*(?![\w])", re.UNICODE)

# Words that are names in the Census lists but far more often something else in a command, and the
# words of commands themselves: never a name unless a cue or a capital in mid-sentence says so.
FUNCTION = set("""
a about above after again against all almost alone along already also although always am among an and another any
anybody anyone anything anywhere are around as ask asked at away back be because been before behind being below
best better between both bring but by can cannot could did do does doing done down during each early either else
enough even ever every everybody everyone everything everywhere few first for from get gets getting give go goes
going gone good got had has have having he her here hers herself him himself his how however i if in inside instead
into is it its itself just keep kind last later least less let lets like little lot lots made make many may maybe me
might mine more most much must my myself near need never new next no nobody none nor not nothing now of off often
oh ok okay old on once one only onto or other others our ours ourselves out outside over own please quite rather
really right same say says see seem several shall she should since so some somebody someone something sometimes
soon still such sure than thanks thank that the their theirs them themselves then there these they thing things this
those though through till to today together tomorrow tonight too toward towards under until up upon us very via was
we well were what whatever when where whether which while who whom whose why will with within without would yes yet
you your yours yourself yourselves yesterday
i'm i'll i've i'd it's that's what's where's who's how's there's here's let's don't doesn't didn't can't won't
isn't aren't wasn't i you'll you're we're they're he's she's
""".split())
_WORDS = set("""
add alarm alarms arm armed arrive arrives arriving answer bath bathroom bed bedroom bell blind blinds bright brighter
brightness call called calling camera cameras cancel change check clean close closed cold color colour cool cooler
cooling current curtain curtains darker dim disarm display door doors down downstairs dryer fan fans floor floors
freezer fridge front garage garden gate hall hallway heat heater heating help hot house humidity kitchen lamp lamps
level light lights living lock locked lounge lower mode motion music mute nest off office open opened oven pause
percent play playing plug porch power radio raise room rooms sensor set shade shades shower speaker speakers start
status stop switch temperature thermostat timer timers toggle turn tv unlock unlocked unmute up upstairs vacuum
volume warm warmer washer window windows yard
am pm morning afternoon evening night noon midnight minute minutes hour hours second seconds day days week weeks
month months year years time times weekend weekday o'clock clock
monday tuesday wednesday thursday friday saturday sunday january february march april june july august september
october november december
zero two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty hundred half quarter
max min maximum minimum high low medium auto kelvin celsius fahrenheit degree degrees percent
mom mum mommy mummy mother dad daddy father son daughter wife husband kid kids child children baby brother sister
grandma grandpa granny grandmother grandfather nana papa aunt auntie uncle cousin friend friends neighbor neighbour
neighbors boss partner nanny babysitter cleaner roommate flatmate family everyone guest guests dog cat dogs cats
pet pets
message messages text texts email emails mail phone phones number numbers contact contacts photo photo picture
video clip report list lists shopping grocery groceries order delivery deliveries package packages taxi car ride
dinner lunch breakfast food pasta pizza coffee tea milk bread eggs water wine beer laundry dishes trash chores
weather rain snow sun sunny wind storm forecast news calendar schedule meeting appointment reminder note notes
playlist song songs album artist podcast jazz rock pop classical
address home work school office store shop gym park station airport street road city town
code codes pin password wifi wi-fi internet network guest
way mark bill will grace hope joy faith rose ruby june may summer dawn art chase lane king long young page case guy
pat rich sky river star sun moon love lady miss major sterling crystal amber april august autumn honey candy cherry
jack penny holly ivy iris lily daisy hazel fern violet olive ginger pearl jewel gene sunny dusty rusty frank earnest
ernest noble royal prince princess duke baron bishop pastor price cash sugar melody harmony echo nova
alexa siri google spotify netflix youtube amazon apple hey hi hello bye goodbye sorry
yeah nope sure fine great nice cool awesome happy sad
see so man son song soon sung sang lean loan lore ward wade herb clay dot bud buck bee tiny era ok un ed reed else
ray ping chin hung love moon gay kit gale rosy tan major deja chance lacy dusty misty stormy windy rocky sandy
""".split())

# Before a name: a strong cue makes the next words a name unless they are common words.
STRONG_BEFORE = set("""
call phone ring dial text texting texted message msg email e-mail mail tell telling ask asking notify
alert invite invited ping facetime whatsapp remind let contact thank meet meeting visit visiting wake pick send
sending forward forwarding mr mrs ms miss mx dr doctor prof professor sir madam aunt auntie uncle cousin grandma
grandpa granny nana sister brother wife husband partner friend neighbor neighbour boss nanny babysitter cleaner
roommate flatmate colleague coworker boyfriend girlfriend fiance fiancee son daughter mom mum dad mother father
""".split())
# A weak cue makes the next word a name only with more evidence (a Census name, or a verb of people after it).
WEAK_BEFORE = set("is was did does when if until for with from to at by and or whether has have dear".split())
AFTER = set("""
arrives arrived arriving comes came leaves left lives lived said says texted wants wanted asked replied wrote
""".split())
AFTER_BE = set("coming home here back awake asleep arriving leaving visiting staying over".split())
POSSESSED = set("""
number phone cell mobile email address house place home birthday car room playlist office apartment flat
""".split())
_NEEDS_NAME = {"to", "at", "by", "or"}  # "set it to cozy": after these only a capital or a Census name counts
_SENT_THINGS = set("message email text note photo picture package letter gift invite invitation reminder".split())
# every word a cue is made of is a word, not a name, when no cue says otherwise
COMMON = frozenset(FUNCTION | _WORDS | STRONG_BEFORE | WEAK_BEFORE | AFTER | AFTER_BE | POSSESSED)
TITLES = set("mr mrs ms mx dr prof sir madam miss auntie aunt uncle".split())  # kept inside the name's span
_BE = set("is was will has can should needs may".split())
_ENGLISH_ENDING = re.compile(r"(?:ing|ed|ly|tion|ness|ment|able|ible|ful|ous|ive|est|er)$")  # words, rarely names
PARTICLES = set("de da di du del dela della der den van von le la el al bin ibn ben ter ten dos das do mac st".split())

_CUES = STRONG_BEFORE | WEAK_BEFORE | AFTER | AFTER_BE
# Nouns whose next words are a title or a label, not a person: "a timer called turkey", "the movie abbey road"
_TITLED = set("timer timers alarm alarms list reminder scene playlist song track album movie film show series podcast "
              "episode station channel artist band book game app".split())
_NUMBER_WORDS = set("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                    "sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred "
                    "thousand half quarter hour hours minute minutes second seconds".split())
_NEVER = set("january february march april june july august september october november december monday tuesday "
             "wednesday thursday friday saturday sunday i".split())


@lru_cache(maxsize=1)
def census_names() -> tuple[frozenset[str], frozenset[str]]:
    """(given names, family names), lowercase, from the US Census 1990 lists in the `names` package."""
    try:
        folder = resources.files("names")
        given = set()
        for part in ("dist.male.first", "dist.female.first"):
            given.update(line.split()[0].lower() for line in (folder / part).read_text().splitlines() if line.strip())
        family = {line.split()[0].lower() for line in (folder / "dist.all.last").read_text().splitlines() if line.strip()}
    except (ModuleNotFoundError, FileNotFoundError):
        raise PiiError("PII redaction needs the US Census name lists of the `names` package: "
                       "pip install 'edgeslm[assist]'") from None
    return frozenset(given), frozenset(family)


@lru_cache(maxsize=8)
def _grammar_words(language: str) -> frozenset[str]:
    """Every word of Home Assistant's command grammar ("awning", "kelvin", "vacuum"): a command's own
    words, not names. Empty when the grammar is not installed: the fixed list above still holds."""
    try:
        import home_assistant_intents
    except ImportError:
        return frozenset()
    data = home_assistant_intents.get_intents(language) or {}
    texts = [s for intent in data.get("intents", {}).values() for block in intent.get("data", [])
             for s in block.get("sentences", [])]
    texts += list(data.get("expansion_rules", {}).values()) + list(data.get("skip_words", []))
    for spec in data.get("lists", {}).values():
        texts += [str(v.get("in", "")) if isinstance(v, dict) else str(v) for v in spec.get("values", [])]
    words = set()
    for text in texts:
        text = re.sub(r"\{[^}]*\}|<[^>]*>", " ", text).lower()
        for spelled in (re.sub(r"[\[\]]", "", text), re.sub(r"[\[\]()|]", " ", text)):  # "awning[s]": both
            words.update(re.findall(r"[^\W\d_]+(?:'[^\W\d_]+)?", spelled))
    return frozenset(words)


def _phonenumbers() -> Any:
    try:
        import phonenumbers
    except ImportError:
        raise PiiError("PII redaction needs phonenumbers (Google's libphonenumber metadata): "
                       "pip install 'edgeslm[assist]'") from None
    return phonenumbers


class PiiRedactor:
    """`home`: the home's entity, area and floor names are never redacted (a `Home`, or None).
    `regions`: ISO country codes whose national phone formats are recognized."""

    def __init__(self, home: Any = None, regions: tuple[str, ...] = DEFAULT_REGIONS):
        self.given, self.family = census_names()
        self.phonenumbers = _phonenumbers()
        self.regions = tuple(regions)
        for region in self.regions:  # libphonenumber loads a region's metadata on first use: not on a request
            self._valid_phone("020 7946 0958", international=False)
            self.phonenumbers.parse("+1 415 555 0134", region)
        self.words = COMMON | _grammar_words(home.language if home is not None else "en")
        names = []
        if home is not None:
            names = [e.name for e in home.entities] + [a.name for a in home.areas] + [f.name for f in home.floors]
        # longest first, so "Living Room Lamp" is kept whole before "Living Room"
        self._home = [re.compile(rf"(?<![\w]){re.escape(n)}(?![\w])", re.I)
                      for n in sorted({n for n in names if n.strip()}, key=len, reverse=True)]

    def redact(self, text: str) -> Redaction:
        keep = self._kept(text)
        spans: list[PiiSpan] = []

        def add(start: int, end: int, kind: str) -> None:
            while end > start and text[end - 1] in " ,.;:!?":
                end -= 1
            if end <= start or _overlaps(start, end, spans) or _overlaps(start, end, keep):
                return
            spans.append(PiiSpan(start, end, kind, text[start:end]))

        for m in _EMAIL.finditer(text):
            add(m.start(), m.end(), "EMAIL")
        for m in _CARD.finditer(text):
            if _luhn(re.sub(r"\D", "", m.group(0))):
                add(m.start(), m.end(), "CODE")
        for start, end in self._phones(text, spans):
            add(start, end, "PHONE")
        for start, end in _addresses(text):
            add(start, end, "ADDRESS")
        for pattern in (_CODE_CUE, _PASSWORD_CUE):
            for m in pattern.finditer(text):
                add(m.start("code"), m.end("code"), "CODE")
        for m in _LONG_NUMBER.finditer(text):
            add(m.start(), m.end(), "CODE")
        for start, end in self._people(text, keep + spans):
            add(start, end, "PERSON")
        spans.sort(key=lambda s: s.start)
        out, pos = [], 0
        for s in spans:
            out.append(text[pos:s.start])
            out.append(f"<{s.type}>")
            pos = s.end
        out.append(text[pos:])
        return Redaction("".join(out), tuple(spans))

    # -- what must stay ------------------------------------------------------------------------------
    def _kept(self, text: str) -> list[PiiSpan]:
        kept: list[PiiSpan] = []
        for pattern in self._home:
            for m in pattern.finditer(text):
                if not _overlaps(m.start(), m.end(), kept):
                    kept.append(PiiSpan(m.start(), m.end(), "HOME", m.group(0)))
        return kept

    # -- phone numbers -------------------------------------------------------------------------------
    def _phones(self, text: str, taken: list[PiiSpan]) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = [(m.start(), m.end()) for m in _LOCAL_PHONE.finditer(text)]
        for m in _DIGITS.finditer(text):
            run = m.group(0)
            digits = sum(c.isdigit() for c in run)
            if digits < 6 or _TIME.fullmatch(run) or _overlaps(m.start(), m.end(), taken):
                continue
            international = run.lstrip("(").startswith("+")
            cued = _PHONE_CUE.search(text[max(0, m.start() - 40):m.start()])
            # a digit run a phone word announces; or an international number libphonenumber calls impossible
            if (digits >= 7 and cued) or (international and digits >= 8) or self._valid_phone(run, international):
                found.append((m.start(), m.end()))
        return _union(found)

    def _valid_phone(self, run: str, international: bool) -> bool:
        """libphonenumber's metadata says `run` is a number in one of the home's regions. Parsing the
        digit run alone, not the text once per region with PhoneNumberMatcher: 0.1 ms, not 2-8 ms."""
        pn = self.phonenumbers
        for region in self.regions[:1] if international else self.regions:
            try:
                if pn.is_valid_number(pn.parse(run, region)):
                    return True
            except pn.NumberParseException:
                continue
        return False

    # -- people --------------------------------------------------------------------------------------
    def _people(self, text: str, taken: list[PiiSpan]) -> list[tuple[int, int]]:
        tokens = _tokens(text, taken)
        n = len(tokens)
        marks = [self._mark(tokens, i) for i in range(n)]  # 2: a name, 1: may continue one, 0: not a name
        out = []
        i = 0
        while i < n:
            if marks[i] != 2:
                i += 1
                continue
            start = end = i
            while start > 0 and marks[start - 1] >= 1 and tokens[start - 1].joins(tokens[start]) \
                    and tokens[start - 1].low not in _CUES:
                start -= 1
            if start > 0 and tokens[start - 1].low.rstrip(".") in TITLES and tokens[start - 1].joins(tokens[start]):
                start -= 1  # "Dr. Ramona Estrada", "auntie Folake": the title goes with the name
            while end + 1 < n and end - start < 3 and tokens[end].joins(tokens[end + 1]):
                if marks[end + 1] >= 1 and tokens[end + 1].low not in _CUES:
                    end += 1
                elif (tokens[end + 1].low in PARTICLES and end + 2 < n and marks[end + 2] >= 1
                      and tokens[end + 1].joins(tokens[end + 2])):
                    end += 2
                else:
                    break
            out.append((tokens[start].start, tokens[end].end))
            # "X and Y": the second after a name is cued as strongly as the first
            if end + 2 < n and tokens[end + 1].low in ("and", "&") and tokens[end].joins(tokens[end + 1]) \
                    and marks[end + 2] >= 1:
                marks[end + 2] = 2
            i = end + 1
        return out

    def _mark(self, tokens: list[_Token], i: int) -> int:
        t = tokens[i]
        if t.taken:
            return 0
        low = t.low
        before, after = _cue_before(tokens, i), _cue_after(tokens, i, self.words)
        common = low in self.words or len(low) < 2 or all(p in _NUMBER_WORDS for p in low.split("-"))
        labels = i + 1 < len(tokens) and tokens[i + 1].low in _TITLED and t.joins(tokens[i + 1])  # "chicken timer"
        if before != 2 and (labels or _names_a_thing(tokens, i)):
            return 1 if not common else 0  # "a timer called turkey", "the movie abbey road": a title, not a person
        given, family = low in self.given, low in self.family
        capital = t.capital and not t.initial
        if common:
            if low in _NEVER:
                return 0
            # "Will", "Grace", "Young": words that are also names, only so with a capital and a cue,
            # or when a family name follows ("remind grace campbell")
            nxt = tokens[i + 1] if i + 1 < len(tokens) and t.joins(tokens[i + 1]) else None
            surname_next = nxt is not None and nxt.low in self.family and nxt.low not in self.words
            if given and ((capital and (before or after)) or (before == 2 and surname_next)
                          or (t.initial and t.capital and after)):
                return 2
            return 1 if capital and (given or family) else 0
        if given or before == 2 or after or capital:
            return 2
        if t.possessive and t.capital:  # "Augustin's flight": a proper noun owns it
            return 2
        if before == 1 and tokens[i - 1].low not in _NEEDS_NAME and not _ENGLISH_ENDING.search(low):
            return 2  # "for babajide", "did avi ...": an unknown word where a person fits
        return 1


def _tokens(text: str, taken: list[PiiSpan]) -> list[_Token]:
    tokens: list[_Token] = []
    words = _WORD.findall(text)
    # in a command typed (or transcribed) in capitals, a capital says nothing about a name
    shouting = sum(w.isupper() and len(w) > 1 for w in words) > len(words) / 2
    for m in _WORD.finditer(text):
        word, start, end = m.group(0), m.start(), m.end()
        possessive = word[-2:].lower() in ("'s", "’s") and len(word) > 2
        base = word[:-2] if possessive else word
        if text[end:end + 1] == "." and base.lower() in TITLES:
            end += 1  # "Dr. Ramona Estrada": the title's period ends no sentence
            base += "."
        before = text[:start].rstrip()
        after_title = bool(tokens) and tokens[-1].low.rstrip(".") in TITLES and tokens[-1].end == len(before)
        initial = (not before or before[-1] in ".!?:;\"(") and not after_title
        tokens.append(_Token(base, start, start + len(base), possessive, initial, _overlaps(start, end, taken),
                             text[end:end + 1], base[:1].isupper() and not shouting))
    return tokens


def _names_a_thing(tokens: list[_Token], i: int) -> bool:
    """Up to three words back (over "the", "called", "named", "for"), a noun that takes a title."""
    for j in range(i - 1, max(i - 4, -1), -1):
        if not tokens[j].joins(tokens[j + 1]):
            return False
        if tokens[j].low in _TITLED:
            return True
        if tokens[j].low not in ("the", "a", "an", "my", "called", "named", "for", "titled"):
            return False
    return False


def _cue_before(tokens: list[_Token], i: int) -> int:
    """2 when the words before announce a person ("call", "my neighbor", "pick up"), 1 when they may."""
    if i == 0 or not tokens[i - 1].joins(tokens[i]) or tokens[i - 1].taken:
        return 0
    prev = tokens[i - 1].low.rstrip(".")
    if prev in STRONG_BEFORE or prev in TITLES:
        return 2
    if i >= 2 and tokens[i - 2].joins(tokens[i - 1]):
        if prev == "up" and tokens[i - 2].low in ("pick", "wake", "call", "ring", "phone"):
            return 2
        if prev in WEAK_BEFORE and tokens[i - 2].low in _SENT_THINGS:  # "a message to X", "an email for X"
            return 2
    return 1 if prev in WEAK_BEFORE else 0


def _cue_after(tokens: list[_Token], i: int, words: frozenset[str]) -> bool:
    """The words after say a person: "X's number", "X arrives", "X is coming", "X said"."""
    t = tokens[i]
    if i + 1 >= len(tokens):
        return False
    nxt = tokens[i + 1].low
    if t.possessive:
        return nxt in POSSESSED and tokens[i + 1].start - t.end <= 3
    if not t.joins(tokens[i + 1]):
        return False
    if nxt in AFTER:
        return True
    if nxt in _BE and i + 2 < len(tokens) and tokens[i + 1].joins(tokens[i + 2]):
        then = tokens[i + 2].low
        # "X is coming", "X is sleeping", "X is home"; and an unknown word before "is allowed" is a subject
        if t.low in words:
            return False
        return then in AFTER_BE or (t.capital and then.endswith("ing")) or (
            nxt in ("is", "was", "has") and then not in FUNCTION and t.low not in _NEVER)
    return False


@dataclass
class _Token:
    text: str
    start: int
    end: int
    possessive: bool
    initial: bool  # first of its sentence, where a capital says nothing
    taken: bool  # inside a home name or a span already redacted
    follows: str  # the character right after the word
    capital: bool  # written with a capital, in a command not all in capitals

    @property
    def low(self) -> str:
        return self.text.lower()

    def joins(self, other: _Token) -> bool:
        """Next to `other` with only a space between: parts of one name can be, across a comma not."""
        return not self.possessive and other.start - self.end <= 2 and (self.follows in (" ", "") or self.text.endswith("."))


def _overlaps(start: int, end: int, spans: list[PiiSpan]) -> bool:
    return any(start < s.end and s.start < end for s in spans)


def _union(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(end, out[-1][1]))
        else:
            out.append((start, end))
    return out


def _luhn(digits: str) -> bool:
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = int(c) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _addresses(text: str) -> list[tuple[int, int]]:
    found = []
    for pattern in (_STREET_FIRST, _STREET_SUFFIX, _STREET_WORD_FIRST):
        for m in pattern.finditer(text):
            words = m.groupdict().get("words") or ""
            if any(w.lower() in _NOT_ADDRESS for w in words.split()):
                continue  # "set the kitchen to 21 degrees on the way": the words between are a command's
            found.append((m.start(), _extend_address(text, m.end())))
    for m in _STREET_ASIAN.finditer(text):
        if "-" in m.group(0) and _extend_address(text, m.end()) > m.end():
            found.append((m.start(), _extend_address(text, m.end())))
    return found


def _extend_address(text: str, end: int) -> int:
    """Past the street: more street words ("Beacon Hill Terrace", "Queen Street West"), a unit, then up to
    three ", City", ", ST 12345", ", SW1A 2AA" parts."""
    while m := _MORE_STREET.match(text, end):
        end = m.end()
    if m := _UNIT.match(text, end):
        end = m.end()
    for _ in range(3):
        m = _ADDRESS_PART.match(text, end)
        if not m:
            break
        words = m.group(1).split()
        if not words or len(words) > 4:
            break
        if any(w.lower().strip(".") in _NOT_ADDRESS and not (w.isupper() and len(w) <= 3) for w in words):
            break  # "ON" is Ontario, "on" a command's word
        end = m.end()
    if m := _POSTCODE.match(text, end):
        end = m.end()
    return end
