"""Pages judged as a visitor sees them: screenshots in a real browser before and after a change.

Before a site's change each health page is shot twice, ``NOISE_PAUSE`` seconds apart; whatever
differs between the two (a clock, a carousel, an advertisement) is the page's noise and is masked.
After the change the page is shot again and compared with the first shot outside the mask: when
more than the page's threshold of the pixels changed, the release broke the page as a visitor sees
it (a stylesheet gone, a header over the content, a blank page served with 200). A page may also
name what must be on it (a CSS selector, a text): present before the change and missing after it is
broken too.

The browser is Debian's Chromium, driven headless through Playwright (its Python wheel; no browser
is ever downloaded): one per agent, on an event loop of its own, its pages limited to
``visual_connections`` at once, each shot within its own deadline. What the browser could not load
is "cannot tell", never a verdict. Images are PNG files under the state folder; the comparison is
Pillow's (C code, a few milliseconds a page).
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Coroutine
from concurrent.futures import Future
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin

from PIL import Image, ImageChops, ImageFilter

log = logging.getLogger(__name__)
VIEWPORT = (1280, 900)
SHOT_SECONDS = 30.0  # one page loaded and shot, at most
LOAD_SECONDS = 10.0  # after its document, a page's resources have this long; then it is shot as drawn
TAB_SECONDS = 10.0  # a tab made or closed, a browser started or stopped
START_SECONDS = 30.0  # Chromium started
RESTART_EVERY = 60.0  # a browser that does not answer is started again at most this often
NOISE_PAUSE = 3.0  # seconds between the two shots of the baseline
PIXEL_TOLERANCE = 24  # a pixel whose brightness differs by less is the same (anti-aliasing, image codecs)
MASK_GROW = 15  # the noise mask grows this much around what moved (a clock's next digit, a carousel's edges)
PNG_LEVEL = 1  # images written fast: zlib's level 9 took 100 ms a page for a few percent less disk
DEFAULT_THRESHOLD = 0.02  # share of the page's unmasked pixels that may change
BASELINE_FILE = "baseline.json"  # beside the baseline's images while a change is under way
CHROMIUM_ARGS = ["--disable-gpu", "--hide-scrollbars", "--disable-background-networking", "--disable-component-update",
                 "--font-render-hinting=none"]
Result = TypeVar("Result")


@dataclass(frozen=True)
class PageSpec:
    """A health page and what a visitor must find on it."""

    path: str
    selector: str | None = None  # a CSS selector that must match something visible
    text: str | None = None  # a text the page must show
    threshold: float | None = None  # this page's share of changed pixels (else the agent's)


@dataclass
class Shot:
    png: bytes | None  # None: the browser could not show the page ("cannot tell")
    problem: str = ""
    found: dict[str, bool] = field(default_factory=dict)  # "selector" / "text" -> present


@dataclass(frozen=True)
class Comparison:
    changed: float  # share of the unmasked pixels that changed
    masked: float  # share of the page masked as noise
    diff: bytes  # drawn when asked: the after image, what changed in red, the mask tinted blue (else b"")


class Browser:
    """One headless Chromium for the agent, on a thread and event loop of its own.

    Its ``connections`` tabs are made once and reused (a new tab is a new renderer process: most of a
    shot's cost), each in a browser context of its own whose cookies and storage are cleared before
    every shot, so each shot is a first visit. A tab that misses its deadline or errs is closed and
    made again; a browser that no longer answers at all is stopped and started again, once a minute at
    most (``RESTART_EVERY``); until then its shots are "cannot tell"."""

    def __init__(self, executable: str, connections: int = 4):
        self.executable = executable
        self.connections = connections
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="visual-loop", daemon=True)
        self.thread.start()
        self._driver: Any = None
        self._browser: Any = None
        self._tabs: asyncio.Queue[Tab | None] | None = None
        self._restarted = -RESTART_EVERY  # monotonic time of the last restart
        self._restarting = asyncio.Lock()
        self._generation = 0  # which start a tab belongs to: the tabs of a browser stopped are made again
        # on Chromium's command line (it ignores it): how this agent finds its browser's processes to kill
        self.marker = f"--wpfleet-visual={os.getpid()}-{id(self):x}"
        self._call(self._start())

    @classmethod
    def find(cls, connections: int = 4) -> Browser | None:
        """The system's Chromium, started; None (said once, by the caller) when there is none."""
        executable = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
        if executable is None:
            return None
        try:
            return cls(executable, connections)
        except Exception as exc:  # noqa: BLE001 - no browser is a reason to skip visual checks, said by the caller
            log.error("visual checks: Chromium at %s does not start: %s", executable, exc)
            return None

    async def _start(self) -> None:
        from playwright.async_api import async_playwright

        self._driver = await async_playwright().start()
        args = CHROMIUM_ARGS + [self.marker] + (["--no-sandbox"] if os.geteuid() == 0 else [])
        self._browser = await asyncio.wait_for(
            self._driver.chromium.launch(executable_path=self.executable, args=args, headless=True), START_SECONDS)
        if self._tabs is None:
            self._tabs = asyncio.Queue()
            for _ in range(self.connections):
                self._tabs.put_nowait(None)  # made at its first shot
        self._generation += 1

    def shoot(self, url: str, spec: PageSpec | None = None, deadline: float | None = None) -> Shot:
        return self._call(self.take(url, spec, deadline))

    def shoot_all(self, urls: list[tuple[str, PageSpec | None]], deadline: float | None = None) -> list[Shot]:
        """Several pages at once (as many as there are tabs)."""
        return self._call(self.take_all(urls, deadline))

    def submit(self, work: Coroutine[Any, Any, Result]) -> Future[Result]:
        """``work`` under way on the browser's loop; its result when the caller needs it."""
        return asyncio.run_coroutine_threadsafe(work, self.loop)

    async def take_all(self, urls: list[tuple[str, PageSpec | None]], deadline: float | None = None) -> list[Shot]:
        return list(await asyncio.gather(*(self.take(url, spec, deadline) for url, spec in urls)))

    async def take(self, url: str, spec: PageSpec | None = None, deadline: float | None = None) -> Shot:
        """One page loaded and shot within ``deadline`` (default ``SHOT_SECONDS``); "cannot tell" (a ``Shot``
        without image) otherwise."""
        assert self._tabs is not None
        deadline = deadline or SHOT_SECONDS
        tabs = self._tabs
        tab = await tabs.get()
        try:
            if tab is not None and tab.generation != self._generation:
                tab = None  # of a browser since stopped
            if tab is None:
                tab = await self._open_tab()
                if tab is None:
                    return Shot(None, f"cannot tell: Chromium does not answer (it is started again at most every "
                                      f"{RESTART_EVERY:.0f} s)")
            try:
                return await asyncio.wait_for(self._load(tab, url, spec, deadline), deadline + TAB_SECONDS)
            except TimeoutError:
                problem = f"cannot tell: the browser did not show {url} within {deadline:.0f} s"
            except Exception as exc:  # noqa: BLE001 - anything the browser says is "cannot tell", never a verdict
                problem = f"cannot tell: the browser could not show {url}: {_first_line(exc)}"
            failed, tab = tab, None
            try:  # the tab is made again for the next shot; a browser that cannot even close it is hung
                await asyncio.wait_for(failed.context.close(), TAB_SECONDS)
                alive = self._browser is not None and self._browser.is_connected()
            except Exception:  # noqa: BLE001 - not answering: killed and started again
                alive = False
            if not alive:  # hung, or gone (a crash, the OOM killer)
                await self._restart(failed.generation)
            return Shot(None, problem)
        finally:
            tabs.put_nowait(tab)

    async def _open_tab(self) -> Tab | None:
        """A new tab; None when the browser does not answer (it is then started again, if it may be yet)."""
        generation = self._generation
        if self._browser is not None and self._browser.is_connected():
            try:
                return await asyncio.wait_for(self._new_tab(), TAB_SECONDS)
            except Exception as exc:  # noqa: BLE001 - a browser that makes no tab is hung
                log.warning("visual checks: Chromium made no tab: %s", _first_line(exc) or "no answer")
        await self._restart(generation)
        if self._browser is None or self._generation == generation:
            return None
        try:
            return await asyncio.wait_for(self._new_tab(), TAB_SECONDS)
        except Exception:  # noqa: BLE001 - the fresh one does not answer either: "cannot tell"
            return None

    async def _new_tab(self) -> Tab:
        context = await self._browser.new_context(viewport={"width": VIEWPORT[0], "height": VIEWPORT[1]},
                                                  service_workers="block")
        page = await context.new_page()
        return Tab(context, page, await context.new_cdp_session(page), self._generation)

    async def _restart(self, generation: int) -> None:
        """Kill the browser of ``generation`` (unless another caller already replaced it) and start a new
        one — at most every ``RESTART_EVERY`` seconds: a browser that hangs again at once is not
        restarted in a loop."""
        async with self._restarting:
            if generation != self._generation or time.monotonic() - self._restarted < RESTART_EVERY:
                return
            self._restarted = time.monotonic()
            log.error("visual checks: Chromium does not answer; it is killed and started again")
            await self._stop(0)
            try:
                await self._start()
            except Exception as exc:  # noqa: BLE001 - the shots say "cannot tell" until the next restart works
                log.error("visual checks: Chromium does not start again: %s", _first_line(exc))

    async def _stop(self, grace: float) -> None:
        """The browser closed (within ``grace``, else killed with its whole process group) and its driver
        stopped; nothing of it outlives this."""
        browser, driver, self._browser, self._driver = self._browser, self._driver, None, None
        try:
            if browser is not None and grace > 0:
                await asyncio.wait_for(browser.close(), grace)
        except Exception as exc:  # noqa: BLE001 - it did not close: killed below
            log.warning("visual checks: Chromium did not close within %.0f s (%s); killed", grace,
                        _first_line(exc) or "no answer")
        _kill(self.marker)
        if driver is not None:
            try:
                await asyncio.wait_for(driver.stop(), TAB_SECONDS)
            except Exception as exc:  # noqa: BLE001 - the driver is Playwright's own process: said, left
                log.warning("visual checks: Playwright's driver did not stop: %s", _first_line(exc) or "no answer")

    async def _load(self, tab: Tab, url: str, spec: PageSpec | None, deadline: float) -> Shot:
        """As a first visit: no cookies, no storage; shot once the page is drawn. A resource that never
        arrives (a stalled tracker) does not stop a visitor from seeing the page: after ``LOAD_SECONDS``
        the page is shot as it is drawn."""
        page = tab.page
        await tab.context.clear_cookies()
        answer = await page.goto(url, wait_until="domcontentloaded", timeout=deadline * 1000)
        if answer is None and url != WORKS:  # (a data: URL has no answer: it is the browser's own)
            return Shot(None, f"cannot tell: no answer for {url}")
        try:
            await page.wait_for_load_state("load", timeout=min(LOAD_SECONDS, deadline) * 1000)
        except Exception:  # noqa: BLE001 - what was drawn by then is what a visitor sees
            log.info("visual: %s did not finish loading within %.0f s; shot as drawn", url, LOAD_SECONDS)
        await page.evaluate(SETTLED)  # web fonts in, two frames drawn
        made = await tab.cdp.send("Page.captureScreenshot", {"format": "png", "optimizeForSpeed": True})
        png = base64.b64decode(made["data"])
        found: dict[str, bool] = {}
        if spec is not None and spec.selector:
            found["selector"] = await page.locator(spec.selector).first.is_visible()
        if spec is not None and spec.text:
            found["text"] = spec.text in await page.inner_text("body")
        await page.evaluate(FORGET)
        return Shot(png, "", found)

    def works(self) -> bool:
        """Whether this browser shows a page of its own (no network) within ``TAB_SECONDS``: what tells a page
        the browser cannot show from a browser that shows nothing."""
        return self.shoot(WORKS, deadline=TAB_SECONDS).png is not None

    def close(self) -> None:
        try:
            self._call(self._stop(TAB_SECONDS))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)

    def _call(self, work: Coroutine[Any, Any, Result]) -> Result:
        return self.submit(work).result()


def _kill(marker: str) -> None:
    """SIGKILL the Chromium started with ``marker`` on its command line, with its process group (its
    renderers, GPU process and zygote: Chromium leads a group of its own). A stopped (SIGSTOP) or hung
    browser goes too; one already gone is nothing to do."""
    wanted = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted not in (entry / "cmdline").read_bytes().split(b"\0"):
                continue
            pid = int(entry.name)
            if os.getpgid(pid) == pid:
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except OSError:  # gone meanwhile (ProcessLookupError), or not ours to read
            continue


@dataclass
class Tab:
    context: Any  # playwright BrowserContext
    page: Any  # playwright Page
    cdp: Any  # the page's DevTools session: screenshots encoded for speed
    generation: int  # the browser's start it belongs to


# a page's fonts loaded and two frames drawn since (what was laid out is on the screen), at most 2 s
SETTLED = """() => Promise.race([
  document.fonts.ready.then(() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))),
  new Promise(done => setTimeout(done, 2000))])"""
WORKS = "data:text/html,<p>wpfleet</p>"  # a page any working browser shows at once
# what this visit stored, gone before the next one
FORGET = "() => { try { localStorage.clear(); sessionStorage.clear(); } catch (e) {} }"


class Reference:
    """A page's baseline ready to be compared with, made once: the first shot, and what moved between it
    and the second (grown by ``MASK_GROW``) — the noise mask."""

    def __init__(self, first: bytes, second: bytes):
        self.image = _image(first, None)
        self.noise = _grow(_differs(self.image, _image(second, self.image.size)))


def compare(reference: Reference, after: bytes, again: bytes | None = None, *, draw: bool = False) -> Comparison:
    """``after`` against the reference's first shot, outside its noise mask — and, when the page was shot
    ``again`` after the change, outside what moved between those two too (a carousel may show the same
    slide twice before and move only after). ``draw``: the difference image too (a page that failed)."""
    one, noise = reference.image, reference.noise
    now = _image(after, one.size)
    if again is not None:
        noise = ImageChops.lighter(noise, _grow(_differs(now, _image(again, one.size))))
    changed = ImageChops.subtract(_differs(one, now), noise)  # 255 where it changed and is not noise
    total = one.size[0] * one.size[1]
    masked = noise.histogram()[255]
    counted = changed.histogram()[255]
    return Comparison(counted / max(1, total - masked), masked / total,
                      _picture(now, noise, changed) if draw else b"")


def _picture(now: Image.Image, noise: Image.Image, changed: Image.Image) -> bytes:
    """The page after the change, faded; the mask tinted blue, what changed outside it in red."""
    shown = Image.blend(now, Image.new("RGB", now.size, "white"), 0.6)
    shown.paste(Image.new("RGB", now.size, (80, 140, 255)), mask=noise.point(lambda v: 90 if v else 0))
    shown.paste(Image.new("RGB", now.size, (230, 0, 0)), mask=changed)
    out = BytesIO()
    shown.save(out, "PNG", compress_level=PNG_LEVEL)
    return out.getvalue()


def _image(png: bytes, size: tuple[int, int] | None) -> Image.Image:
    made = Image.open(BytesIO(png)).convert("RGB")
    return made if size is None or made.size == size else made.resize(size)


def _grow(mask: Image.Image) -> Image.Image:
    """``mask`` grown by ``MASK_GROW`` // 2 pixels each way: a box blur (its cost is the same at any
    radius, where a max filter's grows with its square) is non-zero wherever a masked pixel is near."""
    return mask.filter(ImageFilter.BoxBlur(MASK_GROW // 2)).point(lambda v: 255 if v else 0)


def _differs(a: Image.Image, b: Image.Image) -> Image.Image:
    return ImageChops.difference(a, b).convert("L").point(lambda v: 255 if v > PIXEL_TOLERANCE else 0)


@dataclass
class Baseline:
    first: bytes
    second: bytes
    found: dict[str, bool]
    _reference: Reference | None = None

    def reference(self) -> Reference:
        if self._reference is None:  # decoded and masked once, by the first look that needs it
            self._reference = Reference(self.first, self.second)
        return self._reference


class VisualCheck:
    """One site's visual check for one run. Its first look takes the baseline, in the background: the
    two shots and the pause between them run on the browser's loop while the site's backup is made,
    and ``ready`` (before the first change) waits for them. Each later look after the site changed
    compares with the baseline; a look with no change since the last reuses that verdict. The pages
    are shot while the other checks run. Files go to ``folder``."""

    def __init__(self, browser: Browser, folder: Path, url: str, specs: list[PageSpec], threshold: float,
                 pause: float = NOISE_PAUSE):
        self.browser, self.folder, self.url = browser, folder, url
        self.specs = {spec.path: spec for spec in specs}
        self.threshold, self.pause = threshold, pause
        self.baseline: dict[str, Baseline] = {}
        self._taking: Future[None] | None = None  # the baseline under way
        self._stale = True  # the site changed since the last verdict
        self._kept = False  # the baseline is on disk
        self._last: dict[str, str] = {}  # the last verdicts ("visual /", "flow /")
        self.shots = 0
        self.images: dict[str, dict[str, Any]] = {}  # path -> the files and figures of its last comparison

    def begin(self, paths: tuple[str, ...]) -> Future[list[Shot]] | None:
        """The look the health check about to run needs, under way beside it; None: nothing to shoot."""
        if self._taking is None:
            self._taking = self.browser.submit(self._take_baseline(paths))
            return None
        if not self._stale:
            return None
        self.ready()
        return self.browser.submit(self.browser.take_all(self._urls([p for p in paths if p in self.baseline])))

    def end(self, looking: Future[list[Shot]] | None, paths: tuple[str, ...], checks: dict[str, str]) -> None:
        """Add each page's visual verdict (and its key flow's) to ``checks``."""
        if looking is None:
            if not self._stale:
                checks.update(self._last)
            return
        wanted = [p for p in paths if p in self.baseline]
        looked: dict[str, tuple[bytes, Shot]] = {}
        verdicts: dict[str, str] = {}
        for path, shot in zip(wanted, looking.result(), strict=True):
            if shot.png is None:  # once more, in a fresh tab
                shot = self.browser.shoot(urljoin(self.url, path.lstrip("/")), self.specs.get(path))
            if shot.png is not None:
                looked[path] = (shot.png, shot)
            elif self.browser.works():  # shown before the change, never since, by a browser that works
                verdicts[f"visual {path}"] = f"the browser no longer shows the page (it did before the change): " \
                                             f"{shot.problem.removeprefix('cannot tell: ')}"
                self.images.pop(path, None)
            else:
                log.warning("visual check of %s: %s (not a verdict: the browser itself does not answer)", path,
                            shot.problem)
        self.shots += 1
        differs = [path for path, (png, _) in looked.items() if self._compare(path, png) != "ok"]
        again: dict[str, bytes | None] = {}
        if differs:  # looks different: shot again, so that what moves after the change is masked too
            time.sleep(self.pause)
            again = dict(zip(differs, (a.png for a in self.browser.shoot_all(self._urls(differs))), strict=True))
        for path, (png, shot) in looked.items():
            verdict = self._compare(path, png, again[path]) if path in differs else "ok"
            flow = self._flow(path, shot)
            if verdict != "ok" or flow not in (None, "ok"):  # a failure: its images drawn and kept
                verdict = self._compare(path, png, again.get(path), draw=True)
            verdicts[f"visual {path}"] = verdict
            if flow is not None:
                verdicts[f"flow {path}"] = flow
        checks.update(verdicts)
        self._last, self._stale = verdicts, False

    def changed(self) -> None:
        """The site's files changed: the next look shoots again."""
        self._stale = True

    def ready(self) -> None:
        """Wait for the baseline, then keep it on disk: called before the site's first change. Should the
        agent die during the change, the run that settles the site later judges with it (``resume``)."""
        if self._taking is None or self._kept:
            return
        try:
            self._taking.result()
            self._keep()
            self._kept = True
        except Exception as exc:  # noqa: BLE001 - no baseline (a full disk): the site is judged without it
            log.error("%s: the visual baseline failed (%s); the pages are judged without it", self.url, exc)
            self.baseline.clear()

    def close(self, keep_baseline: bool = False) -> None:
        """The run ends: a baseline still under way is not needed, and the one kept on disk is not either
        (a failure's images stay: they are the ticket's) — unless ``keep_baseline``: the run did not end,
        and the one that settles the site needs it."""
        if self._taking is not None:
            self._taking.cancel()
        if keep_baseline:
            return
        for kept in [self.folder / BASELINE_FILE, *self.folder.glob("*-baseline-[12].png")]:
            kept.unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()

    @classmethod
    def resume(cls, browser: Browser, folder: Path, url: str, specs: list[PageSpec], threshold: float,
               pause: float = NOISE_PAUSE) -> VisualCheck | None:
        """The check of a run the agent died in, with the baseline it kept before its first change; None
        when it kept none (it died before, or ran without visual checks)."""
        try:
            found = json.loads((folder / BASELINE_FILE).read_text())
            baseline = {path: Baseline((folder / f"{_slug(path)}-baseline-1.png").read_bytes(),
                                       (folder / f"{_slug(path)}-baseline-2.png").read_bytes(), dict(flags))
                        for path, flags in found.items()}
        except (OSError, ValueError, AttributeError) as exc:
            if (folder / BASELINE_FILE).exists():
                log.error("%s: the visual baseline kept in %s is unreadable (%s); judged without it", url, folder, exc)
            return None
        made = cls(browser, folder, url, specs, threshold, pause)
        made.baseline = baseline
        taken: Future[None] = Future()
        taken.set_result(None)  # taken, by the run that died: every look from here compares
        made._taking, made._kept = taken, True
        return made

    def _keep(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for path, held in self.baseline.items():
            (self.folder / f"{_slug(path)}-baseline-1.png").write_bytes(held.first)
            (self.folder / f"{_slug(path)}-baseline-2.png").write_bytes(held.second)
        written = self.folder / (BASELINE_FILE + ".new")
        written.write_text(json.dumps({path: held.found for path, held in self.baseline.items()}))
        written.replace(self.folder / BASELINE_FILE)  # last, whole: its presence says the images are there

    def _urls(self, paths: list[str]) -> list[tuple[str, PageSpec | None]]:
        return [(urljoin(self.url, p.lstrip("/")), self.specs.get(p)) for p in paths]

    async def _take_baseline(self, paths: tuple[str, ...]) -> None:
        urls = self._urls(list(paths))
        first = await self.browser.take_all(urls)
        await asyncio.sleep(self.pause)
        second = await self.browser.take_all(urls)
        for path, one, two in zip(paths, first, second, strict=True):
            if one.png is None or two.png is None:
                log.warning("visual baseline of %s: %s; the page is judged without it", path,
                            one.problem or two.problem)
                continue
            self.baseline[path] = Baseline(one.png, two.png, two.found)
            for what, present in two.found.items():
                if not present:
                    log.warning("%s: page %s shows no %s %r before any change: not checked after it", self.url, path,
                                what, getattr(self.specs[path], what))

    def _compare(self, path: str, after: bytes, again: bytes | None = None, *, draw: bool = False) -> str:
        """The page's verdict; with ``draw``, its three images written (only a failure's are kept: a passing
        look writes nothing, where 10,000 sites would leave gigabytes a round)."""
        held = self.baseline[path]
        made = compare(held.reference(), after, again, draw=draw)
        spec = self.specs.get(path)
        threshold = spec.threshold if spec is not None and spec.threshold is not None else self.threshold
        if draw:
            slug, n = _slug(path), self.shots
            files = {"before": self.folder / f"{slug}-before.png", "after": self.folder / f"{slug}-after-{n}.png",
                     "diff": self.folder / f"{slug}-diff-{n}.png"}
            self.folder.mkdir(parents=True, exist_ok=True)
            for what, data in (("before", held.first), ("after", after), ("diff", made.diff)):
                files[what].write_bytes(data)
            self.images[path] = {"page": path, "changed": round(made.changed, 4), "masked": round(made.masked, 4),
                                 "threshold": threshold, **{k: str(v) for k, v in files.items()}}
        if made.changed <= threshold:
            return "ok"
        return (f"{made.changed:.1%} of the page looks different (threshold {threshold:.1%}, "
                f"{made.masked:.1%} masked as moving)")

    def _flow(self, path: str, shot: Shot) -> str | None:
        spec = self.specs.get(path)
        if spec is None or not shot.found:
            return None
        before = self.baseline[path].found
        gone = [f"{what} {getattr(spec, what)!r}" for what, present in shot.found.items()
                if before.get(what) and not present]
        return "ok" if not gone else "missing after the change: " + ", ".join(gone)

    def failing_images(self, checks: dict[str, str]) -> list[dict[str, Any]]:
        """The images of the pages whose visual check (or flow) failed in ``checks``."""
        return [self.images[path] for path in self.images
                if checks.get(f"visual {path}", "ok") != "ok" or checks.get(f"flow {path}", "ok") != "ok"]


def thumbnail(png: bytes, width: int = 400) -> dict[str, Any]:
    """A screenshot made small, as a PNG data URI (a report stays one self-contained file)."""
    import base64

    image = Image.open(BytesIO(png)).convert("RGB")
    small = image.resize((width, round(image.size[1] * width / image.size[0])), Image.Resampling.LANCZOS)
    out = BytesIO()
    small.save(out, "PNG", optimize=True)
    return {"data": "data:image/png;base64," + base64.b64encode(out.getvalue()).decode(), "width": small.size[0],
            "height": small.size[1]}


def _slug(path: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
