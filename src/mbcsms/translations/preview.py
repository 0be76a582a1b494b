"""``mbcsms translations preview``: one HTML page for staff with every reply in every language
side by side, its segments, encoding and reading level, and each problem from the check where it
stands. A reply that says whether the helpline is open is shown with both hour lines."""

from __future__ import annotations

import html
from datetime import UTC, datetime
from pathlib import Path

from ..catalog import LISTENING, WORD_LISTS, Catalog
from ..helpline_hours import OPEN
from ..sms import UCS2
from . import language_name
from .check import CheckResult, Form, Measure, Problem
from .readability import limit_text, measured

# --- preview -------------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 1.5rem; color: #1d1d1f; }
h1 { font-size: 1.4rem; margin: 0 0 .3rem; }
.lead { color: #555; margin: 0 0 1rem; }
.legend { display: flex; flex-wrap: wrap; gap: .4rem 1.2rem; padding: .6rem .8rem; background: #f5f5f7;
  border-radius: 6px; margin-bottom: 1rem; font-size: .9rem; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th, td { border: 1px solid #d2d2d7; padding: .5rem .6rem; vertical-align: top; text-align: left; }
thead th { background: #f5f5f7; position: sticky; top: 0; }
thead th:first-child { width: 10rem; }
tbody th { background: #fafafa; font-weight: 600; }
tbody th small { display: block; font-weight: normal; color: #666; }
td.bad { background: #fff5f5; border-left: 3px solid #d70015; }
.text { white-space: pre-wrap; overflow-wrap: anywhere; margin: .35rem 0; }
.nl { color: #a0a0a8; }
.badge { display: inline-block; padding: 0 .45rem; border-radius: 999px; font-size: .78rem;
  line-height: 1.5; font-weight: 600; white-space: nowrap; }
.ok { background: #e3f5e6; color: #1b6b2c; }
.over, .problem { background: #d70015; color: #fff; }
.gsm { background: #e8eefc; color: #1f4aa8; }
.ucs { background: #fdf0dc; color: #8a4b00; }
.meta { color: #555; font-size: .82rem; }
.hours { background: #efe8fb; color: #5a2d9c; }
.level { background: #eee; color: #555; }
ul.words { margin: .3rem 0 0; padding-left: 1.1rem; columns: 2; }
ul.problems { margin: .3rem 0 0; padding-left: 1.1rem; font-size: .85rem; color: #8b0010; }
details { font-size: .82rem; color: #444; margin-top: .3rem; }
.summary { margin: 0 0 1rem; }
.summary li { margin: .15rem 0; }
.clean { color: #1b6b2c; font-weight: 600; }
"""


def _escape(text: str) -> str:
    return html.escape(text, quote=True)


def _text_html(text: str) -> str:
    # A visible mark where the SMS has a line break, so staff see that it is one.
    return '<span class="nl">↵</span>\n'.join(_escape(line) for line in text.split("\n"))


def _problem_item(problem: Problem, relative_to: Path | None, with_lang: bool = False) -> str:
    where = problem.location(relative_to) if with_lang or not problem.line else f"line {problem.line}"
    lang = f"<strong>{_escape(problem.lang)}</strong> " if with_lang else ""
    context = f" <code>{_escape(problem.context)}</code>" if problem.context else ""
    return (
        f'<li>{lang}<span class="badge problem">{_escape(problem.kind)}</span>{context} '
        f"({_escape(where)}): {_escape(problem.detail)}</li>"
    )


def shown_forms(measure: Measure) -> list[Form]:
    """The forms the preview shows: the only one, or the "open" line and the longest "closed"
    line of a reply that says whether the helpline is open."""
    if len(measure.forms) <= 1:
        return list(measure.forms)
    opened = [form for form in measure.forms if form.hours == OPEN]
    closed = [form for form in measure.forms if form.hours != OPEN]
    longest = max(closed, key=lambda form: (form.count.segments, form.count.units)) if closed else None
    return opened + ([longest] if longest else [])


def _level_badge(form: Form, lang: str) -> str:
    if form.level is None or not measured(lang):
        return '<span class="badge level">reading level not measured</span>'
    name = "ease" if lang.split("_")[0].split("-")[0].lower() == "es" else "grade"
    return (
        f'<span class="badge {"ok" if form.readable else "over"}" title="limit: {_escape(limit_text(lang))}">'
        f"{name} {form.level:.1f}</span>"
    )


def _form_html(form: Form, measure: Measure, lang: str) -> str:
    count = form.count
    segments = f"{count.segments} segment{'s' if count.segments != 1 else ''} of {measure.budget}"
    encoding = "ucs" if count.encoding == UCS2 else "gsm"
    label = f'<span class="badge hours">{_escape(form.label)}</span> ' if form.label else ""
    return (
        f'<div class="meta">{label}<span class="badge {"over" if count.segments > measure.budget else "ok"}">'
        f'{segments}</span> <span class="badge {encoding}">{count.encoding}</span> {count.units} characters '
        f"{_level_badge(form, lang)}</div>"
        f'<div class="text">{_text_html(form.text)}</div>'
    )


def _keyword_list(catalog: Catalog, name: str, lang: str) -> str:
    """One keyword file, as the bot reads it: its phrases, one a line, and where it is."""
    words = catalog.words(name, lang)
    path = f"{lang}/keywords/{name}.txt"
    items = "".join(f"<li>{_escape(word)}</li>" for word in words) or "<li>(none)</li>"
    return (f"<details><summary>{len(words)} keywords</summary>"
            f'<div class="meta">{_escape(path)}</div><ul class="words">{items}</ul></details>')


def _cell(result: CheckResult, topic_id: str, lang: str, relative_to: Path | None) -> str:
    if lang in result.broken:
        return '<td class="bad"><span class="badge problem">broken</span> catalog cannot be read</td>'
    measure = result.measures.get((topic_id, lang))
    problems = result.problems_for(lang, topic_id)
    if measure is None:
        return "<td></td>"
    parts = [f'<td class="{"bad" if problems else "good"}">']
    parts.extend(_form_html(form, measure, lang) for form in shown_forms(measure))
    if problems:
        parts.append('<ul class="problems">' + "".join(_problem_item(p, relative_to) for p in problems) + "</ul>")
    catalog = result.catalog
    if catalog is not None:
        topic = catalog.topic(topic_id)
        if topic.kind in LISTENING:
            parts.append(_keyword_list(catalog, topic_id, lang))
    parts.append("</td>")
    return "".join(parts)


def preview_html(result: CheckResult, relative_to: Path | None = None) -> str:
    """One self-contained page: every reply in every language side by side, with its segment
    count, encoding and budget, and each problem ``check`` found flagged where it stands."""
    languages = result.languages
    source = result.source
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    head = (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        f"<title>mbcsms replies: {_escape(', '.join(languages))}</title>\n"
        f"<style>{_STYLE}</style>\n</head>\n<body>\n"
    )
    intro = (
        "<h1>mbcsms: every reply in every language</h1>\n"
        f'<p class="lead">Generated {generated}. Each cell is the whole text message exactly as the '
        "bot sends it (menu and phone number filled in), with the keywords it listens for, read "
        "from the language's <code>keywords/</code> files. Fix problems in the language's "
        "<code>messages.po</code> or keyword file, then run <code>mbcsms translations check</code>.</p>\n"
        '<div class="legend">'
        '<span><span class="badge ok">2 segments of 4</span> within its SMS budget</span>'
        '<span><span class="badge over">5 segments of 4</span> over budget: shorten it</span>'
        '<span><span class="badge gsm">GSM-7</span> plain letters: 160 characters, or 153 a segment</span>'
        '<span><span class="badge ucs">UCS-2</span> a letter outside GSM-7 (á í ó ú ç ã õ ê…): 70, '
        'or 67 a segment</span>'
        '<span><span class="badge ok">grade 5.1</span> reading level within its limit (English: '
        'Flesch-Kincaid grade 7 or lower; Spanish: Fernández-Huerta ease 65 or higher)</span>'
        '<span><span class="badge hours">helpline open</span> a reply that says whether the helpline '
        'is open, shown with each hour line</span>'
        '<span><span class="badge problem">fuzzy</span> a problem to fix, with its line in the file</span>'
        '<span><span class="nl">↵</span> a line break in the message</span>'
        "</div>\n"
    )
    summary = ['<ul class="summary">']
    for lang in languages:
        count = len(result.problems_for(lang))
        name = f"{_escape(language_name(lang))} ({_escape(lang)})"
        if count:
            summary.append(f'<li>{name}: <span class="badge problem">{count} problems</span></li>')
        else:
            summary.append(f'<li>{name}: <span class="clean">no problems</span></li>')
    summary.append("</ul>\n")

    # Problems that belong to no reply (a broken file, a word list, a stale entry) go on top.
    general = [p for p in result.problems if p.topic is None or source is None
               or p.topic not in {t.id for t in source.topics}]
    general_html = ""
    if general:
        general_html = (
            "<h2>Problems outside the replies</h2>\n<ul class=\"problems\">"
            + "".join(_problem_item(p, relative_to, with_lang=True) for p in general)
            + "</ul>\n"
        )

    rows = []
    catalog = result.catalog
    if catalog is not None:
        lists = "".join(
            f"<tr><th>{_escape(name)}</th>"
            + "".join(f"<td>{_keyword_list(catalog, name, lang)}</td>" for lang in languages)
            + "</tr>\n"
            for name in WORD_LISTS
        )
        header = "".join(f"<th>{_escape(language_name(lang))} ({_escape(lang)})</th>" for lang in languages)
        rows.append("<h2>Word lists</h2>\n<table>\n"
                    f"<thead><tr><th>List</th>{header}</tr></thead>\n<tbody>\n{lists}</tbody>\n</table>\n")
    if source is not None:
        header = "".join(
            f"<th>{_escape(language_name(lang))} ({_escape(lang)})</th>" for lang in languages
        )
        rows.append(f"<table>\n<thead><tr><th>Topic</th>{header}</tr></thead>\n<tbody>\n")
        for topic in source.topics:
            label = f"menu {topic.menu} · " if topic.menu is not None else ""
            rows.append(
                f'<tr id="topic-{_escape(topic.id)}"><th>{_escape(topic.id)}'
                f"<small>{label}{_escape(topic.kind)} · budget {topic.budget} segments</small></th>"
                + "".join(_cell(result, topic.id, lang, relative_to) for lang in languages)
                + "</tr>\n"
            )
        rows.append("</tbody>\n</table>\n")
    return head + intro + "".join(summary) + general_html + "".join(rows) + "</body>\n</html>\n"
