"""BPMN messages and signals from other systems: wake the waiting case(s), or start a process on a start event."""

from __future__ import annotations

from engine.errors import Forbidden
from webui.api import schemas as S
from webui.api.auth import engine
from webui.api.spec import api_route


@api_route("POST", "/messages", summary="Gửi thông điệp BPMN / deliver a BPMN message", tag="messages",
           body=S.MESSAGE, body_required=True, response="MessageResult", errors=(403, 404, 409))
def deliver_message(call):
    """Administrators only (an integration uses a token of an administrator account): a message
    reaches cases of any unit. Delivered to every case waiting for `name` whose correlation values match
    `correlations`; if none waits and a process starts on this message, a case is started. The
    `payload` becomes the message's data. 404 if nothing waits for the message."""
    if not call.actor.is_admin:
        raise Forbidden("Chỉ quản trị hệ thống (hoặc tài khoản tích hợp) được gửi thông điệp.",
                        "Only an administrator or an integration account may deliver messages.")
    body = call.body
    delivered = engine().deliver_message(call.actor.id, body["name"], body.get("correlations") or {},
                                         body.get("payload") or {})
    return {"instances": delivered}


@api_route("POST", "/signals", summary="Phát tín hiệu BPMN / broadcast a BPMN signal", tag="messages",
           body=S.SIGNAL, body_required=True, response="MessageResult", errors=(403, 404, 409))
def send_signal(call):
    """Administrators only (an integration uses a token of an administrator account): a signal reaches
    cases of any unit. Every case waiting for signal `name` catches it, or only case `instance_id` when
    given; without `instance_id` a case of every process whose start event catches it is started too.
    The `payload` becomes the signal's data. 404 if nothing caught it."""
    body = call.body
    caught = engine().send_signal(call.actor.id, body["name"], body.get("payload") or {}, body.get("instance_id"))
    return {"instances": caught}
