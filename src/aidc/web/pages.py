"""The dashboard's pages, served by `aidc up` beside the API: sign in with an API token (kept in an HttpOnly,
SameSite=Strict cookie), then the overview, the jobs and a job's page.

The pages are thin: the server renders the frame and what the signed-in user may do; `static/app.js`
fills the data from the same `/v1` API the CLI uses (the cookie signs the browser in there too) and keeps it
current by polling. Everything is served from the package: no asset comes from the network.
"""

from __future__ import annotations

from importlib import resources
from typing import Any
from urllib.parse import parse_qs

import yaml
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from aidc import __version__
from aidc.api.deps import SESSION_COOKIE, JobId, PrincipalDep, ServicesDep, cookie_authorization, get_principal
from aidc.domain.errors import AidcError, FieldProblem, InvalidInput
from aidc.domain.jobs import JobSpec
from aidc.security.rbac import Action, Principal, teams_allowed
from aidc.services.bundle import Services

router = APIRouter(include_in_schema=False)
_templates = Environment(loader=PackageLoader("aidc.web", "templates"), autoescape=select_autoescape(["html"]))
COOKIE_MAX_AGE = 12 * 3600  # a browser session a working day long; the token itself may live longer
MAX_TOKEN = 4096


def static_files() -> StaticFiles:
    return StaticFiles(directory=str(resources.files("aidc.web").joinpath("static")))


# Defence in depth beside textContent-only rendering: scripts, styles, images and connections from this origin
# only (plot PNGs included), no plugins, no framing (clickjacking), forms post here only.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
    "form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def _render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _templates.get_template(name).render(version=__version__, **context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


async def _principal(request: Request, services: Services) -> Principal | None:
    """Who the cookie signs in, None when it signs in no one (absent, expired, revoked)."""
    try:
        authorization = cookie_authorization(request)
        if authorization is None:
            return None
        return await get_principal(request, services, authorization)  # the API's own sign-in
    except AidcError:
        return None


def _page(name: str, principal: Principal, **context: Any) -> HTMLResponse:
    may_submit = teams_allowed(principal, Action.JOB_SUBMIT) != frozenset()
    may_operate = teams_allowed(principal, Action.NODE_WRITE) is None  # cluster-wide: silence, acknowledge
    return _render(name, user=principal.name, may_submit=may_submit, may_operate=may_operate, **context)


@router.get("/login")
async def login_form(request: Request, services: ServicesDep) -> Response:
    if await _principal(request, services) is not None:
        return RedirectResponse("/", status_code=303)
    return _render("login.html")


def _form_field(body: bytes, name: str) -> str:
    """One field of an urlencoded form (parsed here: the only form, so no multipart parser is needed)."""
    values = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=8).get(name, [""])
    return values[0]


@router.post("/login")
async def login(request: Request, services: ServicesDep) -> Response:
    token = _form_field(await request.body(), "token")
    if not token.strip() or len(token) > MAX_TOKEN:
        return _render("login.html", status=401, error="paste an API token")
    client = request.client.host if request.client else None
    try:
        await run_in_threadpool(  # raises for a token that signs in no one
            services.auth.authenticate, f"Bearer {token.strip()}", client, getattr(request.state, "request_id", None)
        )
    except AidcError as exc:
        return _render("login.html", status=401, error=str(exc))
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token.strip(),
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    return response


@router.post("/logout")
async def logout() -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/")
async def overview(request: Request, services: ServicesDep) -> Response:
    principal = await _principal(request, services)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return _page("overview.html", principal, page="overview")


@router.get("/jobs")
async def jobs(request: Request, services: ServicesDep) -> Response:
    principal = await _principal(request, services)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return _page("jobs.html", principal, page="jobs")


@router.post("/jobs/yaml")
async def submit_yaml(request: Request, services: ServicesDep, principal: PrincipalDep) -> Response:
    """A job spec pasted as YAML (what `aidc submit FILE` reads), for the dashboard's form: signed in and
    refused like `POST /v1/jobs` (by cookie, only with the dashboard's header)."""
    try:
        data = yaml.safe_load((await request.body()).decode("utf-8", errors="replace"))
    except yaml.YAMLError as exc:
        raise InvalidInput([FieldProblem("yaml", f"not valid YAML: {exc}")]) from None
    if not isinstance(data, dict):
        raise InvalidInput([FieldProblem("yaml", "must be a job spec: a mapping with name, run and resources")])
    spec = JobSpec.model_validate(data)
    job = await run_in_threadpool(services.jobs.submit, principal, spec)
    return JSONResponse({"id": job.id}, status_code=201)


@router.get("/jobs/{job_id}")
async def job(job_id: JobId, request: Request, services: ServicesDep) -> Response:
    principal = await _principal(request, services)
    if principal is None:
        return RedirectResponse("/login", status_code=303)
    return _page("job.html", principal, page="jobs", job_id=job_id)


# Read-only pages, one frame each; the script fills them from the API.
SIMPLE_PAGES = {
    "queues": ("queues.html", "Queues and teams"),
    "alerts": ("alerts.html", "Alerts"),
    "models": ("models.html", "Models"),
    "energy": ("energy.html", "Energy"),
    "simulations": ("simulations.html", "Simulations"),
}


def _simple(page: str) -> Any:
    template, _ = SIMPLE_PAGES[page]

    async def show(request: Request, services: ServicesDep) -> Response:
        principal = await _principal(request, services)
        if principal is None:
            return RedirectResponse("/login", status_code=303)
        return _page(template, principal, page=page)

    return show


for _name in SIMPLE_PAGES:
    router.add_api_route(f"/{_name}", _simple(_name), methods=["GET"], include_in_schema=False)
