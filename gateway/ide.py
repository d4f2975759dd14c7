"""GraphiQL, served by the gateway itself: no CDN, so it works on a machine without
internet (dev mode only, like the page itself).

The assets (GraphiQL 3.8.3 and React 18.2.0, pinned, unchanged from their npm packages)
are package data under gateway/static/graphiql/ and are served at ``ASSET_PATH``. The
page puts the dev tokens one click away: each button sets the Authorization header (and
the WebSocket's connection_init payload, for subscriptions) to a freshly minted token of
its role.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from pathlib import Path

import orjson
from pymongo.errors import PyMongoError
from starlette.applications import Starlette

from gateway.devkeys import ALL_SCOPES, mint_role_token
from gateway.settings import Settings
from gateway.sources import Sources
from loaders.registry import sample_usccs

__all__ = [
    "ASSETS",
    "ASSET_PATH",
    "dev_tokens",
    "example_uscc",
    "ide_page",
    "sample_usccs_or_none",
]

log = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent / "static" / "graphiql"
ASSET_PATH = "/graphql-ide"

_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>integrity-gateway · GraphiQL</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="{assets}/graphiql.min.css">
  <style>
    body {{ margin: 0; height: 100vh; display: flex; flex-direction: column;
           font-family: system-ui, sans-serif; }}
    #tokens {{ padding: 6px 12px; border-bottom: 1px solid #ddd; font-size: 14px; }}
    #tokens button {{ margin-left: 6px; }}
    #tokens button[aria-pressed="true"] {{ font-weight: bold; }}
    #graphiql {{ flex: 1; min-height: 0; }}
  </style>
</head>
<body>
  <div id="tokens">Dev tokens (sets the Authorization header):{buttons}</div>
  <div id="graphiql">Loading…</div>
  <script src="{assets}/react.production.min.js"></script>
  <script src="{assets}/react-dom.production.min.js"></script>
  <script src="{assets}/graphiql.min.js"></script>
  <script>
    const TOKENS = {tokens};
    // A query to start with travels in the fragment (/graphql#query=...): in the query
    // string, a GET with `query` is an operation, not a request for this page.
    const parameters = new URLSearchParams(window.location.hash.slice(1));
    const url = window.location.origin + window.location.pathname;
    const subscriptionUrl = url.replace(/^http/, "ws");
    const root = ReactDOM.createRoot(document.getElementById("graphiql"));
    let query = parameters.get("query") || undefined;

    function show(role) {{
      const token = TOKENS[role];
      const authorization = token ? "Bearer " + token : undefined;
      const fetcher = GraphiQL.createFetcher({{
        url,
        subscriptionUrl,
        wsConnectionParams: authorization ? {{ Authorization: authorization }} : {{}},
      }});
      const headers = authorization
        ? JSON.stringify({{ Authorization: authorization }}, null, 2)
        : "";
      for (const button of document.querySelectorAll("#tokens button")) {{
        button.setAttribute("aria-pressed", String(button.dataset.role === role));
      }}
      root.render(
        React.createElement(GraphiQL, {{
          key: role,
          fetcher,
          headers,
          query,
          onEditQuery: (edited) => {{ query = edited; }},
          defaultEditorToolsVisibility: "headers",
          shouldPersistHeaders: false,
        }}),
      );
    }}
    for (const button of document.querySelectorAll("#tokens button")) {{
      button.addEventListener("click", () => show(button.dataset.role));
    }}
    show(parameters.get("as") || "anonymous");
  </script>
</body>
</html>
"""


def ide_page(tokens: list[tuple[str, str]]) -> str:
    """The page, with a button per dev token (``(role, token)``) and one for anonymous."""
    roles = ["anonymous", *(role for role, _ in tokens)]
    buttons = "".join(
        f'<button type="button" data-role="{html.escape(role)}">{html.escape(role)}</button>'
        for role in roles
    )
    # Inside a <script>: no "</" may close it early.
    embedded = orjson.dumps(dict(tokens)).decode().replace("</", "<\\/")
    return _PAGE.format(assets=ASSET_PATH, buttons=buttons, tokens=embedded)


def dev_tokens(settings: Settings, owned: str | None) -> list[tuple[str, str]]:
    """A token per role, 8 hours, signed by the development key (dev mode only); the
    owner's acts for ``owned`` (none without an example enterprise)."""
    ttl = dt.timedelta(hours=8)
    tokens = [("member", mint_role_token(settings, "member", ttl=ttl))]
    if owned is not None:
        tokens.append(
            (f"owner of {owned}", mint_role_token(settings, "owner", enterprise=owned, ttl=ttl))
        )
    tokens += [
        (
            "service (all scopes)",
            mint_role_token(settings, "service", scopes=ALL_SCOPES, platform="1688", ttl=ttl),
        ),
        ("operator", mint_role_token(settings, "operator", ttl=ttl)),
    ]
    return tokens


async def sample_usccs_or_none(sources: Sources) -> list[str]:
    """A USCC of each kind from the registry (the banner's examples); none if it does
    not answer."""
    try:
        return await sample_usccs(sources)
    except PyMongoError as exc:
        log.warning("example USCCs not read: %s", exc)
        return []


async def example_uscc(app: Starlette) -> str | None:
    """The enterprise GraphiQL's owner token acts for: the banner's first example, or
    looked up on GraphiQL's first request (rather than at every start in dev mode)."""
    if not hasattr(app.state, "example_uscc"):
        examples = await sample_usccs_or_none(app.state.runtime.sources)
        app.state.example_uscc = examples[0] if examples else None
    found: str | None = app.state.example_uscc
    return found
