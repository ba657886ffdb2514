"""Process definitions: list what is deployed, deploy new models (administrators)."""

from __future__ import annotations

from pathlib import PurePosixPath

from flask import request

from engine import bpmnxml, queries
from engine.definitions import MAX_FILES, Bundle
from engine.errors import Forbidden, InvalidInput, TooLarge
from webui import request_db
from webui.api import schemas as S
from webui.api.auth import engine
from webui.api.http import UnsupportedMediaType, check_text, field_errors
from webui.api.spec import PROCESS, Param, api_route

RAW_TYPES = ("application/octet-stream", "application/xml", "text/xml", "application/bpmn+xml")


@api_route("GET", "/definitions", summary="Các quy trình đã triển khai / deployed definitions", tag="definitions",
           params=(PROCESS,), response="DefinitionList")
def list_definitions(call):
    """Every deployed version, newest first per process; `latest` marks the one new cases start on."""
    with request_db.read() as session:
        return {"items": queries.definition_list(session, call.query.get("process"))}


@api_route("POST", "/definitions", summary="Triển khai quy trình / deploy a process model", tag="definitions",
           uploads=True, params=(Param("key", "query", {"type": "string", "pattern": S.KEY_PATTERN},
                                       "Mã quy trình khi gửi một tệp BPMN thô / process key for a raw BPMN body"),),
           status=201, alt_status=(200,), response="DeployResult", errors=(403, 422))
def deploy_definition(call):
    """Administrators only. Send `multipart/form-data` with one or more `files` (.bpmn, .dmn, JSON
    Schema forms, process.json), or one BPMN document as the raw body. Invalid models are refused
    with 422 and the reason; files over the size limit with 413. 201 for a new version, 200 when
    identical content was already deployed (nothing changes)."""
    if not call.actor.is_admin:
        raise Forbidden("Chỉ quản trị hệ thống được triển khai quy trình.", "Only an administrator may deploy.")
    eng = engine()
    max_bytes = eng.settings.max_upload_bytes
    if request.mimetype == "multipart/form-data":
        bundle = _bundle_from_form(max_bytes)
    elif request.mimetype in RAW_TYPES or (request.mimetype or "").endswith("+xml"):
        bundle = _bundle_from_raw(call.query.get("key"), max_bytes)
    else:
        raise UnsupportedMediaType(
            "Hãy gửi multipart/form-data (trường 'files') hoặc nội dung BPMN thô (application/xml).",
            "Send multipart/form-data ('files') or a raw BPMN body (application/xml).",
            {"content_type": request.mimetype or ""})
    result = eng.deploy_bundle(bundle, call.actor.id)
    body = {"definition_id": result.definition_id, "process": result.process_key, "version": result.version,
            "created": result.created}
    return body, 201 if result.created else 200


def _bundle_from_form(max_bytes: int) -> Bundle:
    files = request.files.getlist("files")  # over MAX_CONTENT_LENGTH: werkzeug raises 413 here
    key = request.form.get("key") or None
    details = {}
    if not files:
        details["files"] = "Cần ít nhất một tệp. / At least one file is required."
    if len(files) > MAX_FILES:
        raise TooLarge(f"Quá nhiều tệp ({len(files)}; tối đa {MAX_FILES}).",
                       f"Too many files ({len(files)}; at most {MAX_FILES}).", {"files": len(files)})
    if key is not None:
        check_text(key, "key")
        details.update(field_errors({"type": "string", "pattern": S.KEY_PATTERN}, key, "key"))
    names = []
    for index, upload in enumerate(files):
        name = PurePosixPath((upload.filename or "").replace("\\", "/")).name
        if not name or len(name) > 255:
            details[f"files/{index}"] = "Thiếu tên tệp hợp lệ. / A file name is required."
            continue
        check_text(name, f"files/{index}")
        names.append(name)
    if len(set(names)) != len(names):
        details["files"] = "Hai tệp trùng tên. / Two files have the same name."
    if details:
        raise InvalidInput("Tệp tải lên không hợp lệ.", "Invalid upload.", details)
    bpmn_names = [n for n in names if n.lower().endswith((".bpmn", ".bpmn20.xml"))]
    bundle = Bundle(key=key or PurePosixPath(bpmn_names[0] if bpmn_names else names[0]).stem.split(".")[0])
    for name, upload in zip(names, files, strict=True):
        bundle.add_file(name, upload.read(max_bytes + 1), max_bytes)
    return bundle


def _bundle_from_raw(key: str | None, max_bytes: int) -> Bundle:
    raw = request.get_data(cache=False)
    if not raw.strip():
        raise InvalidInput("Thiếu nội dung BPMN.", "The BPMN body is missing.",
                           {"body": "Trường này là bắt buộc. / This field is required."})
    if key is None:
        # The first process id names the process, as a file name would in a folder upload.
        root = bpmnxml.parse_xml("body.bpmn", raw, max_bytes)
        process = root.find(f"{{{bpmnxml.BPMN_NS}}}process")
        key = (process.get("id") if process is not None else None) or "quy_trinh"
        check_text(key, "key")
    bundle = Bundle(key=key)
    bundle.add_file(f"{key}.bpmn", raw, max_bytes)
    return bundle
