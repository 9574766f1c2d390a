"""What respondents see: the invitation email and the response pages. Pure (templates in
`templates/`, autoescaped: a question or a name can never inject markup).

The page is plain server-rendered HTML that works without JavaScript: a `fieldset` whose
`legend` is the question holds one labelled radio button per score (arrow keys move
through them), the optional comment has its own label, errors are announced
(`role="alert"`) and tied to the group with `aria-describedby`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from shared.events import SURVEY_SCORE_RANGES, SurveyType
from shared.templates import template_environment

LANG = "en"
COMMENT_MAX = 5_000
SUBJECT_MAX = 150

SCALE_HINTS = {
    SurveyType.NPS: "0 means not at all likely, 10 means extremely likely.",
    SurveyType.CSAT: "1 means very dissatisfied, 5 means very satisfied.",
    SurveyType.CES: "1 means strongly disagree, 7 means strongly agree.",
}

_templates = template_environment("services.surveys")


def scale(survey_type: SurveyType) -> list[int]:
    return list(SURVEY_SCORE_RANGES[survey_type])


def render_page(*, survey_type: SurveyType, question: str, comment_question: str | None,
                action: str, unsubscribe_url: str, selected: int | None = None,
                comment: str | None = None, error: str | None = None) -> str:
    return _templates.get_template("respond.html").render(
        lang=LANG,
        title=("There is a problem with your answer - " if error else "") + "A quick question",
        heading="A quick question", question=question, comment_question=comment_question,
        scale=scale(survey_type), scale_hint=SCALE_HINTS[survey_type], selected=selected,
        comment=comment, comment_max=COMMENT_MAX, error=error, action=action,
        unsubscribe_url=unsubscribe_url,
    )


def render_message(heading: str, *paragraphs: str, form_action: str | None = None,
                   form_button: str | None = None) -> str:
    return _templates.get_template("message.html").render(
        lang=LANG, title=heading, heading=heading, paragraphs=paragraphs,
        form_action=form_action, form_button=form_button)


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str


def render_invitation(*, survey_type: SurveyType, question: str, name: str | None,
                      account_name: str | None, respond_url: str, unsubscribe_url: str,
                      expires_at: datetime) -> EmailContent:
    values: dict[str, Any] = {
        "lang": LANG,
        "greeting": f"Hi {name}," if name else "Hello,",
        "question": question,
        "scale_hint": SCALE_HINTS[survey_type],
        "score_links": [(value, f"{respond_url}?score={value}") for value in scale(survey_type)],
        "respond_url": respond_url,
        "unsubscribe_url": unsubscribe_url,
        "account_label": account_name or "your company",
        "expires": f"{expires_at:%d %B %Y}",
    }
    subject = " ".join(question.split())
    if len(subject) > SUBJECT_MAX:
        subject = subject[: SUBJECT_MAX - 1] + "…"
    return EmailContent(
        subject=subject,
        text=_templates.get_template("invitation_email.txt").render(values),
        html=_templates.get_template("invitation_email.html").render(values),
    )


def build_invitation_email(content: EmailContent, *, sender: str, recipient: str, invitation_id: str,
                           unsubscribe_url: str, date: datetime) -> EmailMessage:
    """multipart/alternative (text, then HTML), with one-click unsubscribe (RFC 8058) headers."""
    message = EmailMessage()
    message["Subject"] = content.subject
    message["From"] = sender
    message["To"] = recipient
    message["Date"] = format_datetime(date)
    domain = sender.rpartition("@")[2].strip("> ") or "churnwatch.local"
    # Stable per invitation: a resend after a crash folds into the same message in clients.
    message["Message-ID"] = f"<churnwatch.survey-{invitation_id}@{domain}>"
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(content.text)
    message.add_alternative(content.html, subtype="html")
    return message
