"""Deploying process models: read a bundle, validate everything, store an immutable version."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import jsonschema
from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import BpmnParser
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.mixins.multiinstance_task import LoopTask
from SpiffWorkflow.bpmn.specs.mixins.subworkflow_task import SubWorkflowTask
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from engine import bpmnxml, deadlines
from engine.descriptor import lane_rule_from_name, text, validate_descriptor
from engine.errors import InvalidModel, NotFound, TooLarge
from engine.forms import camunda_form_schema
from engine.models import Definition, Organisation

DESCRIPTOR_NAME = "process.json"
_ELEMENT_REPR = re.compile(r"<Element \{[^}]*\}(\w+) at 0x[0-9a-f]+>")
MAX_FILES = 50
TITLE_CHARS = 255  # definitions.title_vi / title_en columns


@dataclass
class Bundle:
    """What one deployment brings: model files, forms and an optional descriptor."""

    key: str
    xml: dict[str, bytes] = field(default_factory=dict)  # *.bpmn / *.dmn
    forms: dict[str, dict] = field(default_factory=dict)  # JSON Schema files by name
    descriptor: dict | None = None

    @classmethod
    def from_path(cls, path: str | Path, max_bytes: int) -> "Bundle":
        path = Path(path)
        if path.is_dir():
            files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
            if len(files) > MAX_FILES:
                raise TooLarge(f"Thư mục có quá nhiều tệp ({len(files)}).", f"Too many files ({len(files)}).")
            bundle = cls(key=path.name)
            for p in files:
                bundle.add_file(p.name, _read_capped(p, max_bytes), max_bytes)
            return bundle
        if not path.exists():
            raise NotFound(f"Không tìm thấy {path}.", f"{path} does not exist.")
        bundle = cls(key=path.stem)
        bundle.add_file(path.name, _read_capped(path, max_bytes), max_bytes)
        return bundle

    def add_file(self, name: str, raw: bytes, max_bytes: int) -> None:
        if len(raw) > max_bytes:
            raise TooLarge(
                f"Tệp {name} quá lớn ({len(raw):,} byte; tối đa {max_bytes:,}).",
                f"File {name} is too large ({len(raw):,} bytes; limit {max_bytes:,}).",
                {"file": name},
            )
        lower = name.lower()
        if lower.endswith((".bpmn", ".bpmn20.xml", ".dmn", ".xml")):
            self.xml[name] = raw
        elif lower.endswith(".json"):
            try:
                value = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise InvalidModel(
                    f"Tệp {name} không phải JSON hợp lệ: {exc}", f"File {name} is not valid JSON: {exc}", {"file": name}
                ) from None
            if name == DESCRIPTOR_NAME:
                self.descriptor = value
            elif isinstance(value, dict):
                self.forms[name] = value
            else:
                raise InvalidModel(f"Tệp {name} phải là một đối tượng JSON.", f"{name} must be a JSON object.")

    def content_hash(self) -> str:
        digest = {
            "xml": {n: hashlib.sha256(b).hexdigest() for n, b in sorted(self.xml.items())},
            "forms": self.forms,
            "descriptor": self.descriptor,
        }
        canonical = json.dumps(digest, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def _read_capped(path: Path, max_bytes: int) -> bytes:
    with path.open("rb") as fh:
        raw = fh.read(max_bytes + 1)
    return raw


@dataclass
class HumanTaskSpec:
    name: str  # the task spec name (bpmn id, or "<id> [child]" for multi-instance)
    bpmn_id: str
    title: str
    lane: str | None
    form_key: str | None
    instructions: str | None


@dataclass
class ParsedDefinition:
    """A parsed, ready-to-run definition; cached per definition id."""

    definition_id: int | None
    process_key: str
    process_id: str
    dialect: str
    spec: object
    subprocess_specs: dict
    descriptor: dict
    forms: dict
    human_tasks: dict[str, HumanTaskSpec]
    start_timer: tuple[str, str] | None = None  # (timeCycle | timeDate | timeDuration, expression)

    @property
    def title(self) -> str:
        return text(self.descriptor.get("title")) or getattr(self.spec, "description", None) or self.process_id

    @property
    def spec_pair(self) -> tuple:
        return (self.spec, self.subprocess_specs)


def parse_bundle(bundle: Bundle, max_bytes: int, check_forms: bool = True) -> ParsedDefinition:
    """Parse and check a bundle without touching the database (lanes are checked in `deploy`).

    `check_forms=False` when re-parsing a stored definition: its forms were checked at deploy.
    """
    if not any(n.lower().endswith((".bpmn", ".bpmn20.xml", ".xml")) for n in bundle.xml):
        raise InvalidModel("Không có tệp BPMN nào.", "No BPMN file given.")
    descriptor = dict(bundle.descriptor or {"key": _safe_key(bundle.key)})
    descriptor.setdefault("key", _safe_key(bundle.key))
    validate_descriptor(descriptor)

    roots = {name: bpmnxml.normalize(bpmnxml.parse_xml(name, raw, max_bytes)) for name, raw in bundle.xml.items()}
    start_timers: dict[str, tuple[str, str]] = {}
    for root in roots.values():
        start_timers.update(bpmnxml.take_start_timers(root))
    dialects = {bpmnxml.dialect(r) for n, r in roots.items() if not n.lower().endswith(".dmn")}
    has_dmn = any(n.lower().endswith(".dmn") for n in roots)
    dialect = ("camunda" if "camunda" in dialects else
               "spiff" if "spiff" in dialects or has_dmn else "bpmn")
    parser = {"camunda": CamundaParser, "spiff": SpiffBpmnParser, "bpmn": BpmnParser}[dialect]()
    try:
        for name, root in roots.items():
            namespace = etree.QName(root).namespace or ""
            if "/DMN/" in namespace.upper():
                parser.add_dmn_xml(root, filename=name)
            elif namespace != bpmnxml.BPMN_NS:
                raise InvalidModel(
                    f"Tệp {name} không phải mô hình BPMN 2.0.", f"File {name} is not a BPMN 2.0 model.",
                    {"file": name, "namespace": namespace},
                )
            else:
                parser.add_bpmn_xml(root, filename=name)
        process_id, spec, subprocess_specs = _primary_spec(parser, descriptor)
    except (ValidationException, SpiffWorkflowException) as exc:
        reason = _ELEMENT_REPR.sub(r"<\1>", str(exc)).strip()  # no memory addresses in a user's message
        raise InvalidModel(
            f"Mô hình BPMN không hợp lệ: {reason}", f"Invalid BPMN model: {reason}", {"reason": reason}
        ) from None
    except (KeyError, AttributeError, TypeError, ValueError, IndexError) as exc:
        # Spiff's parser assumes well-formed models; report what it tripped on instead of a stack trace.
        raise InvalidModel(
            f"Mô hình BPMN có phần tử không được hỗ trợ hoặc thiếu thuộc tính: {exc!r}",
            f"The BPMN model has an unsupported element or a missing attribute: {exc!r}",
            {"reason": repr(exc)},
        ) from None

    _wire_loop_tasks([spec, *subprocess_specs.values()])
    forms = dict(bundle.forms)
    human = _human_tasks(spec, subprocess_specs, dialect, forms)
    for task in human.values():
        if task.form_key and task.form_key not in forms:
            raise InvalidModel(
                f"Bước '{task.title}' dùng biểu mẫu {task.form_key} nhưng không có tệp đó.",
                f"Step '{task.title}' uses form {task.form_key}, which is missing.",
                {"task": task.bpmn_id, "form": task.form_key},
            )
    deadlines.check_descriptor_tasks(descriptor.get("tasks") or {}, {t.bpmn_id for t in human.values()})
    start_form = descriptor.get("start", {}).get("form")
    if start_form and start_form not in forms:
        raise InvalidModel(f"Thiếu biểu mẫu khởi tạo {start_form}.", f"Start form {start_form} is missing.")
    for name, schema in forms.items() if check_forms else ():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise InvalidModel(
                f"Biểu mẫu {name} không phải JSON Schema hợp lệ: {exc.message}",
                f"Form {name} is not a valid JSON Schema: {exc.message}",
                {"form": name},
            ) from None
    return ParsedDefinition(None, descriptor["key"], process_id, dialect, spec, subprocess_specs, descriptor, forms,
                            human, start_timers.get(process_id))


def _wire_loop_tasks(specs) -> None:
    """Connect each multi-instance child to its parent's merge, as Spiff's own spec deserializer does.

    Spiff wires this lazily when a child is first created, on the spec object that created
    it; a freshly parsed spec (another worker, a restart) would otherwise never merge the
    last instance and the multi-instance step would never finish.
    """
    for process_spec in specs:
        if process_spec is None:
            continue
        for task_spec in process_spec.task_specs.values():
            if isinstance(task_spec, LoopTask):
                child = process_spec.task_specs.get(task_spec.task_spec)
                if child is not None and not child.completed_event.is_connected(task_spec.merge_child):
                    child.completed_event.connect(task_spec.merge_child)


def _safe_key(name: str) -> str:
    key = "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_")
    key = key if key and key[0].isalpha() else f"p_{key}"
    return key[:100]


def _primary_spec(parser, descriptor: dict):
    collaboration = descriptor.get("collaboration_id")
    if collaboration:
        spec, subprocess_specs = parser.get_collaboration(collaboration)
        return collaboration, spec, subprocess_specs
    process_ids = parser.get_process_ids()
    process_id = descriptor.get("process_id")
    if not process_id:
        called = parser.get_process_dependencies()
        roots = [p for p in process_ids if p not in called]
        if not roots:
            raise InvalidModel("Không có quy trình nào có thể thực thi.", "No executable process found.")
        if len(roots) > 1:
            if len(parser.collaborations) == 1:
                name = next(iter(parser.collaborations))
                spec, subprocess_specs = parser.get_collaboration(name)
                return name, spec, subprocess_specs
            raise InvalidModel(
                f"Có nhiều quy trình ({', '.join(roots)}); hãy ghi process_id trong process.json.",
                f"Several processes ({', '.join(roots)}); set process_id in process.json.",
                {"processes": roots},
            )
        process_id = roots[0]
    if process_id not in process_ids:
        raise InvalidModel(
            f"Không tìm thấy quy trình '{process_id}' trong tệp BPMN.", f"Process '{process_id}' not found."
        )
    for target in sorted(t for t in parser.get_process_dependencies() if t not in process_ids):
        raise InvalidModel(
            f"Hoạt động gọi (call activity) trỏ tới quy trình '{target}' không có trong gói triển khai.",
            f"A call activity refers to process '{target}', which is not in the deployment.",
            {"missing_process": target},
        )
    spec = parser.get_spec(process_id)
    return process_id, spec, parser.get_subprocess_specs(process_id)


def _human_tasks(spec, subprocess_specs, dialect: str, forms: dict) -> dict[str, HumanTaskSpec]:
    tasks: dict[str, HumanTaskSpec] = {}
    for process_spec in [spec, *[s for s in subprocess_specs.values() if s is not None]]:
        for ts in process_spec.task_specs.values():
            if not getattr(ts, "manual", False) or isinstance(ts, SubWorkflowTask):
                continue
            bpmn_id = getattr(ts, "bpmn_id", None) or ts.name
            title = getattr(ts, "bpmn_name", None) or bpmn_id
            form_key, instructions = None, None
            ext = getattr(ts, "extensions", None) or {}
            if dialect == "camunda" and getattr(ts, "form", None) is not None and ts.form.fields:
                form_key = f"camunda:{bpmn_id}.json"
                forms[form_key] = camunda_form_schema(ts.form)
            elif isinstance(ext.get("properties"), dict):
                form_key = ext["properties"].get("formJsonSchemaFilename")
            instructions = ext.get("instructionsForEndUser") or getattr(ts, "documentation", None)
            tasks[ts.name] = HumanTaskSpec(ts.name, bpmn_id, title, ts.lane, form_key, instructions)
    return tasks


def resolve_lanes(session: Session, parsed: ParsedDefinition) -> dict:
    """Every lane used by a human step needs a rule; without a descriptor, match lanes by name."""
    lanes = dict(parsed.descriptor.get("lanes") or {})
    organisations = None
    unmapped = []
    for task in parsed.human_tasks.values():
        if task.lane is None or task.lane in lanes:
            continue
        if organisations is None:
            organisations = [tuple(r) for r in session.execute(
                select(Organisation.code, Organisation.name_vi, Organisation.name_en)
            )]
        rule = lane_rule_from_name(task.lane, organisations)
        if rule is None:
            unmapped.append(task.lane)
        else:
            lanes[task.lane] = rule
    if unmapped:
        names = ", ".join(sorted(set(unmapped)))
        raise InvalidModel(
            f"Làn (lane) chưa được gán cho đơn vị hoặc vai trò nào: {names}. "
            "Hãy khai báo trong process.json hoặc đặt tên làn theo tên đơn vị/vai trò.",
            f"Lanes not mapped to an organisation or role: {names}. "
            "Map them in process.json or name them after an organisation or role.",
            {"lanes": sorted(set(unmapped))},
        )
    for lane, rule in lanes.items():
        org = rule.get("org", "")
        if org and not org.startswith(("$", "data:")) and session.get(Organisation, org) is None:
            raise InvalidModel(
                f"Làn '{lane}' trỏ tới đơn vị không tồn tại: {org}.",
                f"Lane '{lane}' refers to an unknown organisation: {org}.",
                {"lane": lane, "org": org},
            )
    return lanes


@dataclass
class DeployResult:
    definition_id: int
    process_key: str
    version: int
    created: bool


def deploy(session: Session, bundle: Bundle, *, now: datetime, actor_id: int | None, max_bytes: int) -> DeployResult:
    """Validate and store a bundle; identical content is a no-op, new content a new version."""
    parsed = parse_bundle(bundle, max_bytes)
    content_hash = bundle.content_hash()
    key = parsed.process_key
    existing = session.scalar(
        select(Definition).where(Definition.process_key == key, Definition.content_hash == content_hash)
    )
    if existing is not None:
        return DeployResult(existing.id, key, existing.version, False)
    descriptor = dict(parsed.descriptor)
    descriptor["lanes"] = resolve_lanes(session, parsed)
    version = (session.scalar(select(func.max(Definition.version)).where(Definition.process_key == key)) or 0) + 1
    title = descriptor.get("title") or parsed.spec.description or parsed.process_id
    row = Definition(
        process_key=key,
        version=version,
        content_hash=content_hash,
        process_id=parsed.process_id,
        dialect=parsed.dialect,
        title_vi=text(title, "vi")[:TITLE_CHARS],  # a modeler's essay in a name must not fail the insert
        title_en=text(title, "en")[:TITLE_CHARS],
        files={n: b.decode("utf-8") for n, b in bundle.xml.items()},
        forms=bundle.forms,
        descriptor=descriptor,
        deployed_at=now,
        deployed_by=actor_id,
    )
    session.add(row)
    session.flush()
    return DeployResult(row.id, key, version, True)


class DefinitionCache:
    """Parsed specs per definition id: a definition is immutable, so parse it once per process."""

    def __init__(self, max_bytes: int, size: int = 256):
        self._max_bytes = max_bytes
        self._size = size
        self._items: OrderedDict[int, ParsedDefinition] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, session: Session, definition_id: int) -> ParsedDefinition:
        """The parsed definition; the row (with its files) is read only on a cache miss."""
        with self._lock:
            parsed = self._items.get(definition_id)
            if parsed is not None:
                self._items.move_to_end(definition_id)
                return parsed
        row = session.get(Definition, definition_id)
        if row is None:
            raise NotFound("Không tìm thấy phiên bản quy trình.", "Process version not found.")
        bundle = Bundle(key=row.process_key, descriptor=row.descriptor, forms=dict(row.forms))
        bundle.xml = {name: body.encode("utf-8") for name, body in row.files.items()}
        parsed = parse_bundle(bundle, self._max_bytes, check_forms=False)
        parsed.definition_id = row.id
        parsed.descriptor = row.descriptor
        with self._lock:
            self._items[row.id] = parsed
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return parsed
