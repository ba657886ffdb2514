"""Inbox at scale: 100,000 open and 1,000,000 finished human tasks; server-side time of inbox pages.

Fill (not measured): the org directory and bundled workflows (engine.seed), then with bulk SQL
inserts ~500 people over the 30 organisations (Sở KH&CN the biggest unit: 60 staff), and cases
with their task rows: --open open tasks (each in a running case; organisations weighted like a
province, Sở KH&CN ~15%, roles staff 75% / supervisor 20% / leader 5%; 25% claimed by a
member, 5% addressed to one person, due dates from 30 days ago to 30 days ahead, 10% without)
and --done finished tasks (completed by members, over two years, 5% returned / cancelled),
with business fields (document number, summary, amount) on every task and case.

Measured, each over --n requests after a warm-up, for several kinds of users:
  - the real Flask view GET / (the inbox page) through the test client, signed in (the
    request's whole server-side time: queries, sorting, badges, template), with filters
    (tab, process, state) and a search over business fields;
  - GET /api/v1/tasks (scope mine / group / all, filters) through the test client;
  - engine.queries.task_list itself.
Reported: p50/p95 per (user, request) on SQLite and PostgreSQL; with --explain, the query plans.

--view current (the default) measures the real inbox, paged in SQL (engine.queries.inbox_page and
inbox_counts); --view reference the in-memory view it replaced (`reference_inbox` /
`reference_inbox_counts` below), which is slow at scale and simple to trust. --compare checks
that both show the same pages (task links and counts) and the same counters, on a small fill.
--keep FILE fills a SQLite file once and reuses it (migrating it first).

    python bench/inbox.py [--db sqlite|postgres|both] [--open 100000] [--done 1000000] [--n 60]
                          [--view current|reference] [--explain] [--compare] [--keep FILE]
"""

from __future__ import annotations

import argparse
import json
import random
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from _common import database, load_average, make_engine, pct, tempdir

PROCESS_TASKS = {  # bundled process -> (task name, lane, role) of its human steps
    "ke_hoach_hanh_dong": [("soan_ke_hoach", "staff"), ("phe_duyet_ke_hoach", "supervisor"),
                           ("xem_xet_ke_hoach", "staff")],
    "du_toan_kinh_phi": [("lap_du_toan", "staff"), ("lanh_dao_duyet", "supervisor"), ("can_doi", "staff"),
                         ("quyet_dinh_phan_bo", "leader")],
    "ho_tro_chuyen_giao_cong_nghe": [("tiep_nhan_ho_so", "staff"), ("kiem_tra_ho_so", "staff"),
                                     ("quyet_dinh_giam_doc", "supervisor"), ("ubnd_phe_duyet", "leader")],
    "bao_cao_dinh_ky": [("soan_bao_cao", "staff"), ("ky_duyet_bao_cao", "supervisor")],
    "sua_doi_ke_hoach": [("soan_de_xuat", "staff"), ("lanh_dao_duyet", "supervisor"),
                         ("ubnd_quyet_dinh", "leader")],
    "tuyen_truyen": [("soan_noi_dung", "staff"), ("phe_duyet_noi_dung", "supervisor"),
                     ("bao_cao_don_vi", "staff")],
}
WORDS = ("kế hoạch", "dự toán", "chuyển giao", "công nghệ", "báo cáo", "tuyên truyền", "đổi mới", "sáng tạo",
         "chuyển đổi số", "nông nghiệp", "giáo dục", "y tế", "hạ tầng", "kinh phí", "nhiệm vụ", "đề tài")
BIG_UNIT = "SO_KHCN"

from engine import dashboard as _dashboard  # noqa: E402 - sys.path is set by _common

ORIGINAL_INBOX_COUNTS = _dashboard.inbox_counts


# ------------------------------------------------------------------ fill
def fill(url: str, workdir: Path, n_open: int, n_done: int, seed: int = 7) -> dict:
    from sqlalchemy import insert, select, text

    from engine import directory, schema
    from engine.models import Definition, HumanTask, Instance, Organisation, Position, Substitute, User
    from engine.projections import display_title, search_text
    from engine.seed import seed as run_seed

    rnd = random.Random(seed)
    engine = make_engine(url, workdir)
    schema.upgrade(engine.db)
    run_seed(engine, demo=False)
    now = datetime.now(timezone.utc)
    pw = directory.hash_password("Bench@2026")
    with engine.db.read() as s:
        orgs = list(s.scalars(select(Organisation.code).order_by(Organisation.code)))
        defs = {d.process_key: d.id for d in s.scalars(select(Definition))}
        templates = {d.process_key: (d.descriptor or {}).get("title_template") for d in s.scalars(select(Definition))}
    # People: the big unit 60 staff, 3 supervisors, 1 leader; others 6-20 staff, 1-2 supervisors;
    # UBND tỉnh's leaders decide the leader steps.
    users, positions, members = [], [], {}
    uid = 1
    users.append({"id": uid, "username": "admin", "full_name": "Quản trị", "email": "", "password_hash": pw,
                  "is_admin": True, "active": True})
    admin_id = uid
    for code in orgs:
        big = code == BIG_UNIT
        counts = {"staff": 60 if big else rnd.randint(6, 20), "supervisor": 3 if big else rnd.randint(1, 2),
                  "leader": 3 if code == "UBND_TINH" else (1 if big else 0)}
        for role, n in counts.items():
            for k in range(n):
                uid += 1
                name = f"{code.lower()}.{role}{k}"
                users.append({"id": uid, "username": name, "full_name": f"Người dùng {name}", "email": "",
                              "password_hash": pw, "is_admin": False, "active": True})
                positions.append({"user_id": uid, "org_code": code, "role": role})
                members.setdefault((code, role), []).append(uid)
    # Organisation weights: the big unit ~15%, the rest Zipf-like.
    weights = {code: (1.0 / (i + 2) ** 0.7) for i, code in enumerate(o for o in orgs if o != BIG_UNIT)}
    weights[BIG_UNIT] = sum(weights.values()) * 0.18
    org_list, org_w = list(weights), list(weights.values())

    def pick_step(code: str):
        process = rnd.choice(list(PROCESS_TASKS))
        steps = PROCESS_TASKS[process]
        r = rnd.random()
        role = "staff" if r < 0.75 else ("supervisor" if r < 0.95 else "leader")
        if not members.get((code, role)):
            role = "staff" if members.get((code, "staff")) else "supervisor"
        fitting = [s for s in steps if s[1] == role] or steps
        return process, rnd.choice(fitting)[0], role

    def business(i: int) -> dict:
        return {"so_van_ban": f"{i % 997}/{rnd.choice(('SKHCN', 'STC', 'SKHDT', 'UBND'))}-KH",
                "trich_yeu": " ".join(rnd.sample(WORDS, 3)).capitalize() + f" năm {2025 + i % 3}",
                "kinh_phi": rnd.randrange(10**6, 5 * 10**9, 10**5)}

    instances, tasks = [], []
    iid = 0
    t_fill = time.perf_counter()
    with engine.db.engine.begin() as conn:
        conn.execute(insert(User), users)
        conn.execute(insert(Position), positions)
        # People on leave: a big-unit staff member stands in for a colleague and for a supervisor.
        big_staff, big_boss = members[(BIG_UNIT, "staff")], members[(BIG_UNIT, "supervisor")]
        conn.execute(insert(Substitute), [
            {"user_id": absent, "substitute_id": big_staff[-1], "starts_on": now.date() - timedelta(days=3),
             "ends_on": now.date() + timedelta(days=3)} for absent in (big_staff[-2], big_boss[-1])])

        def flush(force: bool = False):
            if force or len(tasks) >= 20_000:
                if instances:
                    conn.execute(insert(Instance), instances)
                if tasks:
                    conn.execute(insert(HumanTask), tasks)
                instances.clear()
                tasks.clear()

        def new_instance(code: str, process: str, running: bool, created: datetime, biz: dict) -> int:
            nonlocal iid
            iid += 1
            staff = members.get((code, "staff")) or [admin_id]
            instances.append({
                "id": iid, "definition_id": defs[process], "process_key": process,
                "title": case_title(biz), "status": "running" if running else "completed",
                "owner_org": code, "initiator_id": rnd.choice(staff), "state": "{}", "serializer_version": "1",
                "business": biz, "next_timer_at": None, "message_waits": 0, "error": None, "created_at": created,
                "updated_at": created, "completed_at": None if running else created + timedelta(days=20),
                "version": 1})
            return iid

        def case_title(biz: dict) -> str:
            return f"{biz['trich_yeu']} ({biz['so_van_ban']})"

        def task_row(inst: int, code: str, process: str, name: str, role: str, created: datetime, biz: dict,
                     state: str, due: datetime | None, done_by: int | None = None) -> dict:
            claimed = cand = None
            if state == "open":
                r = rnd.random()
                if r < 0.25:
                    claimed = rnd.choice(members[(code, role)])
                elif r < 0.30:
                    cand = rnd.choice(members[(code, role)])
            title = name.replace("_", " ").capitalize()
            return {"id": uuid.UUID(int=rnd.getrandbits(128)).hex, "instance_id": inst,
                    "spiff_task_id": str(uuid.UUID(int=rnd.getrandbits(128))), "process_key": process,
                    "task_name": name, "title": title, "lane": role, "org_code": code,
                    "role": role, "candidate_user_id": cand, "assignee_id": done_by or claimed, "state": state,
                    "form_key": f"{name}.json", "business": biz, "return_reason": None, "created_at": created,
                    "due_at": due, "completed_at": None if state == "open" else created + timedelta(hours=30),
                    "completed_by": done_by, "escalation_level": 0,
                    # 2% finished by a substitute, acting for a colleague
                    "acting_for": rnd.choice(members[(code, role)]) if done_by and rnd.random() < 0.02 else None,
                    # as the engine writes it (engine.projections.sync_tasks)
                    "search_text": search_text(inst, title, display_title(case_title(biz), templates[process], biz),
                                               biz)}

        # Open work: one open task per running case, plus 0-3 finished earlier steps (counted in --done).
        done_left = n_done
        for i in range(n_open):
            code = rnd.choices(org_list, org_w)[0]
            process, name, role = pick_step(code)
            created = now - timedelta(minutes=rnd.randint(10, 60 * 24 * 90))
            biz = business(i)
            inst = new_instance(code, process, True, created - timedelta(days=2), biz)
            due = None if rnd.random() < 0.10 else now + timedelta(hours=rnd.uniform(-30 * 24, 30 * 24))
            tasks.append(task_row(inst, code, process, name, role, created, biz, "open", due))
            for k in range(rnd.randint(0, 3) if done_left > 0 else 0):
                staff = members.get((code, "staff")) or [admin_id]
                tasks.append(task_row(inst, code, process, PROCESS_TASKS[process][0][0], "staff",
                                      created - timedelta(days=2 - k * 0.1), biz, "completed",
                                      created - timedelta(days=1), rnd.choice(staff)))
                done_left -= 1
            flush()
        # Finished cases: ~4.5 finished tasks each, over the last two years.
        while done_left > 0:
            code = rnd.choices(org_list, org_w)[0]
            process = rnd.choice(list(PROCESS_TASKS))
            created = now - timedelta(minutes=rnd.randint(60 * 24 * 30, 60 * 24 * 730))
            biz = business(iid)
            inst = new_instance(code, process, False, created, biz)
            for k, (name, role) in enumerate(PROCESS_TASKS[process]):
                if done_left <= 0:
                    break
                who = members.get((code, role)) or members.get((code, "staff")) or [admin_id]
                state = "completed" if rnd.random() > 0.05 else rnd.choice(("returned", "cancelled"))
                tasks.append(task_row(inst, code, process, name, role if (code, role) in members else "staff",
                                      created + timedelta(days=k), biz, state,
                                      created + timedelta(days=k + rnd.randint(1, 7)), rnd.choice(who)))
                done_left -= 1
            flush()
        flush(True)
        if url.startswith("postgresql"):
            conn.execute(text("SELECT setval(pg_get_serial_sequence('instances', 'id'), (SELECT max(id) FROM instances))"))
            conn.execute(text("SELECT setval(pg_get_serial_sequence('users', 'id'), (SELECT max(id) FROM users))"))
    analyze(engine)
    with engine.db.engine.connect() as conn:
        counts = {k: conn.execute(text(q)).scalar() for k, q in {
            "open": "SELECT count(*) FROM human_tasks WHERE state = 'open'",
            "finished": "SELECT count(*) FROM human_tasks WHERE state <> 'open'",
            "instances": "SELECT count(*) FROM instances", "users": "SELECT count(*) FROM users",
            "big_unit_staff_queue": f"SELECT count(*) FROM human_tasks WHERE state = 'open' AND org_code = "
                                    f"'{BIG_UNIT}' AND role = 'staff' AND assignee_id IS NULL "
                                    f"AND candidate_user_id IS NULL"}.items()}
    counts["fill_seconds"] = round(time.perf_counter() - t_fill, 1)
    engine.db.dispose()
    return counts


def analyze(engine) -> None:
    """Fresh planner statistics (as autovacuum / `ANALYZE` would have), and the WAL folded back on SQLite."""
    raw = engine.db.engine.raw_connection()
    try:
        if engine.db.is_sqlite:
            raw.driver_connection.execute("ANALYZE")
            raw.driver_connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            raw.driver_connection.autocommit = True
            raw.driver_connection.execute("VACUUM ANALYZE")
    finally:
        raw.close()


# ------------------------------------------------------------------ the inbox view, paged in SQL
def reference_inbox_counts(session, user_id, today, now):
    """The navigation counters as they were computed before the paged inbox: one OR over every
    visible open task. Kept as the oracle of --compare and tests/load/test_inbox_consistency.py."""
    from sqlalchemy import and_, func, or_, select

    from engine.assignment import substitutes_today
    from engine.dashboard import OPEN, InboxCounts
    from engine.models import HumanTask, Position

    people = [user_id, *substitutes_today(session, user_id, today)]
    personal = or_(HumanTask.assignee_id.in_(people),
                   and_(HumanTask.assignee_id.is_(None), HumanTask.candidate_user_id.in_(people)))
    positions = session.execute(select(Position.org_code, Position.role).where(Position.user_id.in_(people))).all()
    queue = or_(*[and_(HumanTask.org_code == org, HumanTask.role == role) for org, role in positions]) \
        if positions else None
    unit = and_(HumanTask.assignee_id.is_(None), HumanTask.candidate_user_id.is_(None), queue) \
        if queue is not None else None
    visible = or_(personal, unit) if unit is not None else personal
    late = and_(HumanTask.due_at.is_not(None), HumanTask.due_at < now)
    row = session.execute(select(
        func.count().filter(personal),
        func.count().filter(unit) if unit is not None else func.count().filter(HumanTask.id.is_(None)),
        func.count().filter(late),
    ).where(HumanTask.state == OPEN, visible)).one()
    return InboxCounts(row[0] or 0, row[1] or 0, row[2] or 0)


def install_reference(app) -> None:
    """The reference inbox view and navigation counters, in place of the real ones."""
    from flask_login import login_required

    app.view_functions["tasks.inbox"] = login_required(reference_inbox)
    _dashboard.inbox_counts = reference_inbox_counts  # _nav_counts imports it at each call


_ORDER = {"overdue": 0, "due_soon": 1, "on_time": 2, None: 3}


def reference_inbox():
    """The inbox as it was before it was paged in SQL: up to 1,000 visible tasks read, then counted,
    filtered, sorted and paged in Python. Slow at scale, simple to trust: the oracle the real view
    (webui.views.tasks.inbox on engine.queries.inbox_page) is compared with."""
    from flask import render_template
    from flask_login import current_user

    from engine import queries
    from engine.descriptor import fold
    from webui.views import catalogue, engine
    from webui.views.tasks import INBOX_MAX, PER_PAGE, _int_arg, _me, decorate_inbox_items, inbox_filters

    eng = engine()
    tab, process, organisation, state, search = inbox_filters()
    done = tab == "done"
    with eng.db.read() as s:
        page = queries.task_list(s, current_user, eng.today(), eng.now(), queries.TaskQuery(
            scope="mine", status="done" if done else "open", process=process, organisation=organisation,
            limit=INBOX_MAX))
        catalog = catalogue.processes(s)
        my_orgs = queries.org_refs(s, queries.org_codes(s, _me()))
    items = page.items
    decorate_inbox_items(items, catalog, done)
    counts = {"mine": sum(1 for i in items if not i["queue"]), "unit": sum(1 for i in items if i["queue"])}
    if tab == "mine":
        items = [i for i in items if not i["queue"]]
    elif tab == "unit":
        items = [i for i in items if i["queue"]]
    if state and not done:
        items = [i for i in items if (i["badge"]["kind"] if i["badge"] else "none") == state]
    if search:
        needle = fold(search)
        items = [i for i in items if needle in fold(" ".join(
            [str(i["instance_id"]), i["title"] or "", i.get("instance_title") or "", i["process_title"]]
            + [str(v) for v in (i["business"] or {}).values()]))]
    if not done:
        far = eng.now().replace(year=9999)
        items.sort(key=lambda i: (_ORDER.get(i["badge"]["kind"] if i["badge"] else None, 3),
                                  i["due_at"] or far, i["created_at"]))
    page_no = _int_arg("page")
    pages = max(1, (len(items) + PER_PAGE - 1) // PER_PAGE)
    page_no = min(page_no, pages)
    shown = items[(page_no - 1) * PER_PAGE: page_no * PER_PAGE]
    filters = {k: v for k, v in {"tab": tab, "process": process, "organisation": organisation, "state": state,
                                 "q": search}.items() if v}
    return render_template("tasks/inbox.html", items=shown, total=len(items), page=page_no, pages=pages,
                           tab=tab, filters=filters, processes=catalog, organisations=my_orgs, counts=counts,
                           truncated=page.next_cursor is not None, state=state, search=search,
                           process=process, organisation=organisation)


# ------------------------------------------------------------------ measure
def pick_users(url: str, workdir: Path) -> dict[str, int]:
    from sqlalchemy import text

    eng = make_engine(url, workdir)
    with eng.db.engine.connect() as conn:
        q = lambda sql: conn.execute(text(sql)).scalar()  # noqa: E731
        # The busiest of each kind: most tasks claimed by them, or most finished by them.
        out = {
            "admin": q("SELECT id FROM users WHERE is_admin"),
            "staff, big unit": q(f"SELECT p.user_id FROM positions p WHERE p.org_code = '{BIG_UNIT}' AND p.role = "
                                 "'staff' ORDER BY (SELECT count(*) FROM human_tasks t WHERE t.assignee_id = p.user_id "
                                 "AND t.state = 'open') DESC, p.user_id LIMIT 1"),
            "supervisor, big unit": q(f"SELECT user_id FROM positions WHERE org_code = '{BIG_UNIT}' "
                                      "AND role = 'supervisor' ORDER BY user_id LIMIT 1"),
            "staff, small unit": q("SELECT p.user_id FROM positions p WHERE p.role = 'staff' GROUP BY p.user_id, "
                                   "p.org_code ORDER BY (SELECT count(*) FROM human_tasks t WHERE t.state = 'open' "
                                   "AND t.org_code = p.org_code) ASC, p.user_id LIMIT 1"),
        }
        out["substitute"] = q("SELECT substitute_id FROM substitutes ORDER BY id LIMIT 1")
        out["search word"] = q(f"SELECT business FROM human_tasks WHERE state = 'open' AND org_code = '{BIG_UNIT}' "
                               "AND role = 'staff' LIMIT 1")
    eng.db.dispose()
    return {k: v for k, v in out.items() if v is not None}


def measure(url: str, workdir: Path, n: int, explain: bool, profile: bool = False,
            view: str = "current") -> list[dict]:
    from engine import queries
    from engine.models import User
    from webui import create_app

    people = pick_users(url, workdir)
    biz = people.pop("search word")
    biz = json.loads(biz) if isinstance(biz, str) else biz
    search = biz["so_van_ban"]
    eng = make_engine(url, workdir)
    app = create_app(engine=eng, test_config={"TESTING": True, "WTF_CSRF_ENABLED": False})
    if view == "reference":
        install_reference(app)
    cases = [
        ("staff, big unit", "web", "/"),
        ("staff, big unit", "web", "/?tab=unit"),
        ("staff, big unit", "web", "/?state=overdue"),
        ("staff, big unit", "web", "/?process=du_toan_kinh_phi"),
        ("staff, big unit", "web", f"/?q={search}"),
        ("staff, big unit", "web", "/?q=chuyen doi so"),
        ("staff, big unit", "web", "/?tab=done"),
        ("supervisor, big unit", "web", "/"),
        ("supervisor, big unit", "web", "/?tab=done"),
        ("staff, small unit", "web", "/"),
        ("admin", "web", "/"),
        ("substitute", "web", "/"),
        ("staff, big unit", "api", "/api/v1/tasks?scope=mine"),
        ("staff, big unit", "api", "/api/v1/tasks?scope=group&overdue=true"),
        ("staff, big unit", "api", "/api/v1/tasks?scope=mine&status=done"),
        ("supervisor, big unit", "api", "/api/v1/tasks?scope=all"),
        ("supervisor, big unit", "api", "/api/v1/tasks?scope=all&process=bao_cao_dinh_ky&overdue=true"),
        ("admin", "api", "/api/v1/tasks?scope=all"),
        ("admin", "api", f"/api/v1/tasks?scope=all&organisation={BIG_UNIT}"),
        ("admin", "api", "/api/v1/tasks?scope=all&status=done"),
    ]
    results = []
    clients = {}
    for who, uid in people.items():
        c = app.test_client()
        with c.session_transaction() as sess:
            sess["_user_id"] = str(uid)
            sess["_fresh"] = True
        clients[who] = c
    for who, kind, path in cases:
        if who not in clients:
            continue
        c = clients[who]
        for _ in range(3):  # warm-up
            r = c.get(path)
            assert r.status_code == 200, (who, path, r.status_code, r.data[:300])
        samples = []
        for _ in range(n):
            t0 = time.perf_counter()
            r = c.get(path)
            samples.append(time.perf_counter() - t0)
            assert r.status_code == 200
        shown = _count_shown(r, kind)
        results.append({"user": who, "kind": kind, "path": path, "p50": pct(samples, 50) * 1e3,
                        "p95": pct(samples, 95) * 1e3, "shown": shown})
        print(f"  {who:22} {kind:4} {path:62} p50 {results[-1]['p50']:7.1f} ms  p95 {results[-1]['p95']:7.1f} ms"
              f"  ({shown})", flush=True)
    # The query function alone (what the web inbox calls: scope mine, open, up to 1000 rows).
    for who in ("staff, big unit", "supervisor, big unit", "staff, small unit"):
        with eng.db.read() as s:
            user = s.get(User, people[who])
            s.expunge(user)
        for status in ("open", "done"):
            samples = []
            for k in range(n + 3):
                t0 = time.perf_counter()
                with eng.db.read() as s:
                    page = queries.task_list(s, user, eng.today(), eng.now(),
                                             queries.TaskQuery(scope="mine", status=status, limit=1000))
                if k >= 3:
                    samples.append(time.perf_counter() - t0)
            results.append({"user": who, "kind": "query", "path": f"queries.task_list(mine, {status}, limit=1000)",
                            "p50": pct(samples, 50) * 1e3, "p95": pct(samples, 95) * 1e3,
                            "shown": f"{len(page.items)} rows"})
            print(f"  {who:22} query task_list(mine, {status:4}, limit=1000){'':25} p50 {results[-1]['p50']:7.1f} ms"
                  f"  p95 {results[-1]['p95']:7.1f} ms  ({len(page.items)} rows)", flush=True)
    if explain:
        _explain(eng, people)
    if profile:
        import cProfile
        import pstats

        c = clients["staff, big unit"]
        prof = cProfile.Profile()
        prof.enable()
        for _ in range(10):
            c.get("/")
        prof.disable()
        pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
    eng.db.dispose()
    return results


def compare_views(url: str, workdir: Path) -> int:
    """Page by page, the real view must show what the reference one shows (users under 1,000 open tasks)."""
    from webui import create_app

    people = pick_users(url, workdir)
    people.pop("search word")
    eng = make_engine(url, workdir)
    reference = create_app(engine=eng, test_config={"TESTING": True})
    install_reference(reference)
    current = create_app(engine=eng, test_config={"TESTING": True})
    try:
        return _compare(eng, people, reference, current)
    finally:
        _dashboard.inbox_counts = ORIGINAL_INBOX_COUNTS  # install_reference patched the module
        eng.db.dispose()


def _compare(eng, people: dict, reference, current) -> int:
    import re

    paths = ["/", "/?tab=mine", "/?tab=unit", "/?tab=done", "/?state=overdue", "/?state=due_soon", "/?state=on_time",
             "/?state=none", "/?process=du_toan_kinh_phi", "/?q=ke hoach", "/?q=SKHCN", "/?page=2", "/?tab=done&page=3",
             "/?q=chuyen giao&page=2", "/?tab=unit&state=overdue&page=2",
             # searches over the process title and across its edges (case title | process title | fields),
             # in the done tab, and with LIKE's wildcards, which must match only themselves
             "/?q=du toan kinh phi khoa hoc", "/?q=-KH) Dự toán", "/?q=hằng năm 1", "/?q=KL/TW 7",
             "/?tab=done&q=phe duyet", "/?q=_%", "/?tab=mine&q=2026&state=overdue"]
    differences = links = 0
    for who, uid in people.items():
        for path in paths:
            pages = []
            for app in (reference, current):
                c = app.test_client()
                with c.session_transaction() as sess:
                    sess["_user_id"] = str(uid)
                body = c.get(path).data.decode()
                pages.append((re.findall(r'href="/tasks/([0-9a-f]+)"', body),
                              re.findall(r'<span class="count">(\d+)</span>', body)))
            links += len(pages[0][0])
            if pages[0] != pages[1]:
                differences += 1
                print(f"  DIFFERENT {who} {path}: reference {pages[0][1]} {len(pages[0][0])} tasks, "
                      f"real {pages[1][1]} {len(pages[1][0])} tasks")

    for who, uid in people.items():
        with eng.db.read() as s:
            before = reference_inbox_counts(s, uid, eng.today(), eng.now())
            after = ORIGINAL_INBOX_COUNTS(s, uid, eng.today(), eng.now())
        if before != after:
            differences += 1
            print(f"  DIFFERENT navigation counts for {who}: {before} vs {after}")
    print(f"compared {len(people) * len(paths)} pages ({links} task links) and {len(people)} users' navigation "
          f"counts: {differences} different")
    return differences


def _count_shown(resp, kind: str) -> str:
    if kind == "api":
        return f"{len(resp.get_json()['items'])} items"
    links = resp.data.count(b'href="/tasks/')
    return f"{links} links"


def _explain(eng, people: dict) -> None:
    """The plans of the inbox page's statements on human_tasks (engine.queries.inbox_page), on this database."""
    from sqlalchemy import event

    from engine import queries
    from engine.dashboard import due_soon_before
    from engine.models import User

    pg = not eng.db.is_sqlite
    for who, tab in (("staff, big unit", "all"), ("staff, big unit", "done"), ("admin", "all")):
        with eng.db.read() as s:
            user = s.get(User, people[who])
            captured = []

            def grab(conn, cursor, statement, parameters, context, executemany, captured=captured):
                if "human_tasks" in statement and "EXPLAIN" not in statement:
                    captured.append((statement, parameters))

            event.listen(eng.db.engine, "before_cursor_execute", grab)
            try:
                now = eng.now()
                queries.inbox_page(s, user, eng.today(), now, queries.InboxQuery(
                    tab=tab, due_soon_before=due_soon_before(eng.calendar, now)))
            finally:
                event.remove(eng.db.engine, "before_cursor_execute", grab)
            for statement, params in captured:
                prefix = "EXPLAIN (ANALYZE, BUFFERS) " if pg else "EXPLAIN QUERY PLAN "
                rows = s.connection().exec_driver_sql(prefix + statement, params).all()
                print(f"\n-- {who}, tab {tab}: {' '.join(statement.split())[:160]}...\n" + "\n".join(
                    " | ".join(str(c) for c in r) for r in rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", choices=("sqlite", "postgres", "both"), default="both")
    ap.add_argument("--open", type=int, default=100_000)
    ap.add_argument("--done", type=int, default=1_000_000)
    ap.add_argument("--n", type=int, default=60, help="requests per measurement")
    ap.add_argument("--explain", action="store_true")
    ap.add_argument("--compare", action="store_true", help="only check that both views show the same pages")
    ap.add_argument("--view", choices=("current", "reference"), default="current",
                    help="the real inbox view, or the in-memory reference it is checked against (reference_inbox)")
    ap.add_argument("--profile", action="store_true", help="cProfile 10 inbox pages of the big unit's staff")
    ap.add_argument("--keep", type=Path, help="SQLite only: fill this file (or reuse it if it exists)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    out = {}
    for kind in (("sqlite", "postgres") if args.db == "both" else (args.db,)):
        with tempdir(f"dp-inbox-{kind}-") as tmp, database(kind, "dp_bench_inbox", Path(tmp)) as url:
            workdir = Path(tmp)
            if kind == "sqlite" and args.keep:
                url = f"sqlite:///{args.keep.resolve()}"
            if kind == "sqlite" and args.keep and args.keep.exists():
                from engine import schema

                e = make_engine(url, workdir)
                schema.upgrade(e.db)  # a file filled before a migration gets its indexes now
                analyze(e)
                e.db.dispose()
                counts = {"reused": str(args.keep)}
            else:
                counts = fill(url, workdir, args.open, args.done)
            print(f"\n== {kind}: {counts}; view {args.view} ==\nload average: {load_average()}")
            if args.compare:
                compare_views(url, workdir)
                continue
            results = measure(url, workdir, args.n, args.explain, args.profile, args.view)
            print(f"load average after: {load_average()}")
            out[kind] = {"counts": counts, "results": results}
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str))


if __name__ == "__main__":
    main()
