"""The province's web workspace (issue 23): progress board, units and their evidence, appraisal.

One more channel beside Telegram, Zalo and the console: pages are read through storage/ queries and
rendered on the server (aiohttp + Jinja2, a vendored htmx only enhancing), and every decision made
here is an `Inbound` handed to `Service.handle_web`, the same engine, revision checks and audit as a
chat button. Modules: `app` (the application and its middlewares), `auth` (sign-in links, sessions,
CSRF), `pages` (shared rendering), `errors` (the Vietnamese error pages), `board`, `unit`, `appraise`.
"""
