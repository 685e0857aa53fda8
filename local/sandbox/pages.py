"""The HTML the user's browser sees at the sandbox: one page per step, and an error page."""

from __future__ import annotations

from html import escape

from htouhui.page import html_document
from sandbox.state import STEP_TITLES, Session

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem}"
    "button{font-size:1.1rem;padding:.6rem 1.2rem;margin-right:1rem}"
    ".banner{background:#fff3cd;padding:.5rem;border-radius:4px}"
)


def _page(title: str, body: str) -> str:
    banner = '  <p class="banner">海投汇沙箱 · Htouhui sandbox (local, not the real Htouhui)</p>'
    return html_document(title, f"{banner}\n{body}", head=f"\n  <style>{_STYLE}</style>")


def step_page(session: Session, action: str) -> str:
    chinese, english = STEP_TITLES[session.step]
    number, total = session.index + 1, len(session.steps)
    remaining = " → ".join(f"{STEP_TITLES[step][0]}" for step in session.steps)
    body = f"""  <main id="step" data-step="{escape(session.step)}">
    <h1>{escape(chinese)} · {escape(english)}</h1>
    <p>第 {number} 步，共 {total} 步 · Step {number} of {total}: {escape(remaining)}</p>
    <form method="post" action="{escape(action)}" accept-charset="UTF-8">
      <input type="hidden" name="step" value="{escape(session.step)}">
      <button name="outcome" value="success">成功 · Succeed</button>
      <button name="outcome" value="fail">失败 · Fail</button>
    </form>
  </main>"""
    return _page(f"海投汇沙箱 · {chinese} · {english}", body)


def error_page(code: str, message: str) -> str:
    body = f"""  <main id="error" data-code="{escape(code)}">
    <h1>请求失败 · The request failed</h1>
    <p>错误码 · Code: <strong id="code">{escape(code)}</strong></p>
    <p id="message">{escape(message)}</p>
  </main>"""
    return _page(f"海投汇沙箱 · {code}", body)


def index_page(lines: list[str]) -> str:
    items = "\n".join(f"    <li><code>{escape(line)}</code></li>" for line in lines)
    return _page("海投汇沙箱 · Htouhui sandbox", f"  <h1>Htouhui sandbox</h1>\n  <ul>\n{items}\n  </ul>")
