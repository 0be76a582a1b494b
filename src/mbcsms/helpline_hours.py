"""Whether the Komen Breast Care Helpline is usually open at a given moment, and when it opens.

The source (Komen, "Metastatic Breast Cancer", 2021) gives the hours as Monday through Friday,
9:00 a.m. to 10:00 p.m. ET. Replies say "usually": holidays may differ, and nothing here knows
them. Times are computed in America/New_York with zoneinfo, so daylight saving time is followed;
the ``tzdata`` package is a dependency so that slim images without system time zone data work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from babel.dates import get_day_names

HELPLINE_TZ = ZoneInfo("America/New_York")
OPENS_AT = time(9, 0)
CLOSES_AT = time(22, 0)
OPEN_WEEKDAYS = frozenset(range(5))  # Monday (0) to Friday (4)


@dataclass(frozen=True)
class HoursStatus:
    open: bool
    opens: datetime | None  # when closed: the next opening, aware, in New York time


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (got naive {moment.isoformat()})")


def _opening(day: date) -> datetime:
    return datetime.combine(day, OPENS_AT, tzinfo=HELPLINE_TZ)


def status(at: datetime) -> HoursStatus:
    """Whether the helpline is usually open at ``at`` (an aware datetime, any time zone)."""
    _require_aware(at, "at")
    local = at.astimezone(HELPLINE_TZ)
    today = local.date()
    if local.weekday() in OPEN_WEEKDAYS:
        if OPENS_AT <= local.time() < CLOSES_AT:
            return HoursStatus(True, None)
        if local.time() < OPENS_AT:
            return HoursStatus(False, _opening(today))
    day = today + timedelta(days=1)
    while day.weekday() not in OPEN_WEEKDAYS:
        day += timedelta(days=1)
    return HoursStatus(False, _opening(day))


def _clock(moment: datetime | time, lang: str) -> str:
    hour = moment.hour % 12 or 12
    minutes = f":{moment.minute:02d}" if moment.minute else ""
    if lang == "es":
        return f"{hour}{minutes} {'a. m.' if moment.hour < 12 else 'p. m.'}"
    return f"{hour}{minutes}{'am' if moment.hour < 12 else 'pm'}"


def opens_text(opens: datetime, lang: str, now: datetime | None = None) -> str:
    """When the helpline opens, as a reply says it: "today at 9am ET", "tomorrow at 9am ET",
    "Monday at 9am ET"; in Spanish "hoy a las 9 a. m. ET", "mañana a las 9 a. m. ET",
    "el lunes a las 9 a. m. ET". "Today" and "tomorrow" are counted from ``now`` (default: the
    current time), both in New York time. Languages other than Spanish get the English frame."""
    _require_aware(opens, "opens")
    if now is None:
        now = datetime.now(HELPLINE_TZ)
    _require_aware(now, "now")
    local = opens.astimezone(HELPLINE_TZ)
    days_ahead = (local.date() - now.astimezone(HELPLINE_TZ).date()).days
    return _phrase(days_ahead, local.weekday(), local.time(), lang)


# How a reply says when the helpline opens: today, tomorrow, or on a weekday. Spanish has its
# own frame; every other language gets the English one.
_FRAMES = {
    "en": ("today at {clock} ET", "tomorrow at {clock} ET", "{weekday} at {clock} ET"),
    "es": ("hoy a las {clock} ET", "mañana a las {clock} ET", "el {weekday} a las {clock} ET"),
}


def _phrase(days_ahead: int, weekday: int, clock_at: time, lang: str) -> str:
    locale = "es" if lang.replace("-", "_").split("_")[0].lower() == "es" else "en"
    today, tomorrow, other_day = _FRAMES[locale]
    frame = today if days_ahead == 0 else tomorrow if days_ahead == 1 else other_day
    return frame.format(clock=_clock(clock_at, locale), weekday=get_day_names("wide", locale=locale)[weekday])


# -- the hours line of a reply, as a key ---------------------------------------------------------
#
# What a reply says about the hours depends only on whether the line is open and, when it is
# closed, on the day it opens counted from now: "today", "tomorrow" or a weekday's name (the
# opening hour is always OPENS_AT). A reply records that as a short key ("open",
# "closed:tomorrow", "closed:monday"), so a retry of the same message renders the same words
# whenever it comes, and a cache of rendered replies stays small (at most HOURS_KEYS).

OPEN = "open"
_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
HOURS_KEYS = (OPEN, "closed:today", "closed:tomorrow") + tuple(
    f"closed:{_WEEKDAYS[day]}" for day in sorted(OPEN_WEEKDAYS)
)


def hours_key(at: datetime) -> str:
    """What the hours line says at ``at`` (aware): "open", or "closed:" and when it opens."""
    found = status(at)
    if found.open or found.opens is None:
        return OPEN
    days_ahead = (found.opens.date() - at.astimezone(HELPLINE_TZ).date()).days
    if days_ahead == 0:
        return "closed:today"
    if days_ahead == 1:
        return "closed:tomorrow"
    return f"closed:{_WEEKDAYS[found.opens.weekday()]}"


def opens_text_of(key: str, lang: str) -> str:
    """{opens} for a closed key of ``hours_key``: the same words ``opens_text`` gives at that
    moment. ValueError for "open" or an unknown key."""
    state, _, when = key.partition(":")
    if state != "closed" or not when:
        raise ValueError(f"not a closed hours key: {key!r}")
    if when == "today":
        return _phrase(0, 0, OPENS_AT, lang)
    if when == "tomorrow":
        return _phrase(1, 0, OPENS_AT, lang)
    if when not in _WEEKDAYS:
        raise ValueError(f"not a closed hours key: {key!r}")
    return _phrase(2, _WEEKDAYS.index(when), OPENS_AT, lang)
