"""Safe reading of uploaded BPMN/DMN XML, and rewriting of what other modelers write into what Spiff runs."""

from __future__ import annotations

import re

from lxml import etree

from engine.errors import InvalidModel, TooLarge

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
_DOCTYPE = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)

# Bare ISO 8601 literals as modelers write them: PT48H, P7D, R3/PT1H, R/P1D, 2030-01-01T09:00:00+07:00.
_NUM = r"\d+(\.\d+)?"
_ISO_DURATION = (rf"P(?!$)({_NUM}Y)?({_NUM}M)?({_NUM}W)?({_NUM}D)?"
                 rf"(T(?=\d)({_NUM}H)?({_NUM}M)?({_NUM}S)?)?")
_ISO_DATETIME = r"\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?"
_ISO_LITERAL = re.compile(
    rf"^(R\d*/({_ISO_DATETIME}/)?{_ISO_DURATION}|{_ISO_DURATION}|{_ISO_DATETIME})$"
)
_TIMER_TAGS = {f"{{{BPMN_NS}}}{tag}" for tag in ("timeDuration", "timeDate", "timeCycle")}
_CONDITION_TAGS = {f"{{{BPMN_NS}}}conditionExpression", f"{{{BPMN_NS}}}completionCondition"}
_EL = re.compile(r"^\s*\$\{(.*)\}\s*$", re.DOTALL)


# Far above any real model (the largest in the corpus has ~2,500 elements, 15 attributes on
# one element, a 1,300-character attribute): past these a file is an attack, not a diagram, and
# SpiffWorkflow's parser (pure Python) would spend seconds on it and store it in every title.
MAX_ELEMENTS = 20_000
MAX_ATTRIBUTES = 256
MAX_ATTRIBUTE_CHARS = 65_536
MAX_NAME_CHARS = 255  # ids and names land in 255-character columns (process, task, lane, message)
_NAMES = {"id", "name", "calledElement"}


def _parser() -> etree.XMLParser:
    # No DTDs, no entities, no network, no huge trees: XXE and entity bombs cannot expand.
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False, remove_comments=True
    )


def _refuse(name: str, vi: str, en: str, **details) -> InvalidModel:
    return InvalidModel(f"Tệp {name} {vi}", f"File {name} {en}", {"file": name, **details})


def parse_xml(name: str, raw: bytes, max_bytes: int) -> etree._Element:
    """Parse one uploaded model file, refusing what could hurt the server before lxml sees it."""
    if len(raw) > max_bytes:
        raise TooLarge(
            f"Tệp {name} quá lớn ({len(raw):,} byte; tối đa {max_bytes:,} byte).",
            f"File {name} is too large ({len(raw):,} bytes; limit {max_bytes:,}).",
            {"file": name, "size": len(raw), "limit": max_bytes},
        )
    try:
        # Models are stored as UTF-8 text. Checking this first also means the DOCTYPE scan below
        # sees the real characters: a UTF-16 file would hide "<!DOCTYPE" from a byte search.
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _refuse(name, f"phải được mã hóa UTF-8 (byte lỗi ở vị trí {exc.start}).",
                      f"must be encoded in UTF-8 (invalid byte at offset {exc.start}).", offset=exc.start) from None
    if b"\x00" in raw:  # no XML character; UTF-16 text without a byte-order mark is full of them
        raise _refuse(name, "chứa ký tự NUL: tệp phải là XML mã hóa UTF-8.",
                      "contains NUL characters: the file must be XML encoded in UTF-8.")
    if _DOCTYPE.search(raw):
        raise _refuse(name, "chứa khai báo DOCTYPE/ENTITY, không được phép.",
                      "contains a DOCTYPE/ENTITY declaration, which is not allowed.")
    try:
        root = etree.fromstring(raw, _parser())
    except etree.XMLSyntaxError as exc:
        raise InvalidModel(
            f"Tệp {name} không phải XML hợp lệ: {exc}",
            f"File {name} is not well-formed XML: {exc}",
            {"file": name, "line": getattr(exc, "lineno", None)},
        ) from None
    if root is None:
        raise InvalidModel(f"Tệp {name} rỗng.", f"File {name} is empty.", {"file": name})
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:  # however it was spelled or encoded
        raise _refuse(name, "chứa khai báo DOCTYPE/ENTITY, không được phép.",
                      "contains a DOCTYPE/ENTITY declaration, which is not allowed.")
    _check_shape(name, root)
    return root


def _check_shape(name: str, root: etree._Element) -> None:
    """Element count and attribute sizes, in one pass over the tree lxml has already built."""
    count = 0
    for el in root.iter():
        count += 1
        if count > MAX_ELEMENTS:
            raise _refuse(name, f"có quá nhiều phần tử (tối đa {MAX_ELEMENTS:,}).",
                          f"has too many elements (at most {MAX_ELEMENTS:,}).", limit=MAX_ELEMENTS)
        if isinstance(el.tag, str) and el.attrib:  # comments and processing instructions have none
            if len(el.attrib) > MAX_ATTRIBUTES:
                raise _refuse(name, f"có phần tử mang quá nhiều thuộc tính (tối đa {MAX_ATTRIBUTES}).",
                              f"has an element with too many attributes (at most {MAX_ATTRIBUTES}).",
                              line=el.sourceline)
            for attribute, value in el.attrib.items():
                if attribute in _NAMES and len(value) > MAX_NAME_CHARS:
                    raise _refuse(name, f"có mã hoặc tên ({attribute}) dài quá {MAX_NAME_CHARS} ký tự.",
                                  f"has an {attribute} longer than {MAX_NAME_CHARS} characters.",
                                  line=el.sourceline)
                if len(value) > MAX_ATTRIBUTE_CHARS:
                    raise _refuse(name, f"có thuộc tính quá dài (tối đa {MAX_ATTRIBUTE_CHARS:,} ký tự).",
                                  f"has a too long attribute (at most {MAX_ATTRIBUTE_CHARS:,} characters).",
                                  line=el.sourceline)


SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"


def dialect(root: etree._Element) -> str:
    """'camunda', 'spiff' or plain 'bpmn', by the extensions a model actually uses.

    Camunda Modeler declares xmlns:camunda in every export, so a declaration alone says
    nothing; a model using neither extension runs on Spiff's plain BPMN parser, which is
    what other modelers' files (e.g. send/receive tasks without payload extensions) expect.
    """
    uses_camunda = uses_spiff = False
    for el in root.iter(etree.Element):
        namespace = etree.QName(el).namespace
        uses_spiff = uses_spiff or namespace == SPIFF_NS
        uses_camunda = uses_camunda or namespace == CAMUNDA_NS or any(
            a.startswith(f"{{{CAMUNDA_NS}}}") for a in el.attrib)
    if uses_spiff:
        return "spiff"
    return "camunda" if uses_camunda else "bpmn"


def _el_to_python(expr: str) -> str:
    """Best-effort translation of a simple JUEL expression (`${a && !b}`) into Python."""
    expr = expr.replace("&&", " and ").replace("||", " or ")
    expr = re.sub(r"!(?!=)", " not ", expr)
    expr = re.sub(r"\btrue\b", "True", expr)
    expr = re.sub(r"\bfalse\b", "False", expr)
    return re.sub(r"\bnull\b", "None", expr).strip()


def normalize(root: etree._Element) -> etree._Element:
    """Quote bare ISO timer literals and translate `${...}` conditions, in place."""
    for el in root.iter(etree.Element):
        text = (el.text or "").strip()
        if not text:
            continue
        if el.tag in _TIMER_TAGS:
            match = _EL.match(text)
            if match:
                el.text = _el_to_python(match.group(1))
            elif _ISO_LITERAL.match(text):
                el.text = f'"{text}"'
        elif el.tag in _CONDITION_TAGS:
            match = _EL.match(text)
            if match:
                el.text = _el_to_python(match.group(1))
    return root


def take_start_timers(root: etree._Element) -> dict[str, tuple[str, str]]:
    """Remove the timer of each process's own start event; return {process id: (kind, expression)}.

    A timer start means "start a new case on this schedule" (the engine's timer table does
    that); the case itself then starts at once, down one path, however it was started.
    """
    found = {}
    for process in root.iter(f"{{{BPMN_NS}}}process"):
        for start in process.findall(f"{{{BPMN_NS}}}startEvent"):
            timer = start.find(f"{{{BPMN_NS}}}timerEventDefinition")
            if timer is None:
                continue
            for child in timer:
                if etree.QName(child).localname in ("timeCycle", "timeDate", "timeDuration") and child.text:
                    found[process.get("id")] = (etree.QName(child).localname, child.text.strip())
            start.remove(timer)
    return found
