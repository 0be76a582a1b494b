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


def _clock(moment: datetime, lang: str) -> str:
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
    spanish = lang.replace("-", "_").split("_")[0].lower() == "es"
    locale = "es" if spanish else "en"
    clock = _clock(local, locale)
    if spanish:
        if days_ahead == 0:
            return f"hoy a las {clock} ET"
        if days_ahead == 1:
            return f"mañana a las {clock} ET"
        weekday = get_day_names("wide", locale="es")[local.weekday()]
        return f"el {weekday} a las {clock} ET"
    if days_ahead == 0:
        return f"today at {clock} ET"
    if days_ahead == 1:
        return f"tomorrow at {clock} ET"
    weekday = get_day_names("wide", locale="en")[local.weekday()]
    return f"{weekday} at {clock} ET"
