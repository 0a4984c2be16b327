"""Stand-in sites for the benches: N copies of one small WordPress, served by the stand-in web, with the
stand-in WP-CLI answering after a delay (the price of a WordPress bootstrap)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent import demo
from agent.demo.web import StandInWeb

SPEC = dict(core="6.6.2", plugins={"contact-form-7": ("5.9.3", True)}, themes={"twentytwentyfour": "1.2"})


def site_blocks(folder: Path, web: StandInWeb, sites: int, delay: float, *, prefix: str = "site",
                media_mb: int = 0, extra: Callable[[str], str] = lambda name: "") -> list[str]:
    """The ``[[sites]]`` blocks of ``sites`` stand-in sites under ``folder`` (each with one pending minor),
    their "wordpress.org" published on ``web``; ``media_mb`` of random uploads each; ``extra(name)``
    appended to each block (its ``[sites.ssh]``, say)."""
    wporg = folder / "wporg.json"
    wporg.write_text(json.dumps(demo.DEMO_WPORG))
    demo.publish_checksums(wporg, ["6.6.2"])
    web.wporg = wporg
    wp = demo.write_wp_command(folder / "bin", wporg, delay=delay)
    blocks = []
    for index in range(sites):
        name = f"{prefix}-{index}"
        root = demo.build_site(folder / "sites" / name, demo.DemoSite(name, **SPEC), web.url(name))  # type: ignore[arg-type]
        if media_mb:
            uploads = root / "wp-content" / "uploads"
            uploads.mkdir(parents=True, exist_ok=True)
            (uploads / "media.bin").write_bytes(os.urandom(media_mb * 1024 * 1024))
        web.sites[name] = root
        blocks.append(f'[[sites]]\nname = "{name}"\nurl = "{web.url(name)}"\npath = "{root}"\nwp_cli = "{wp}"\n'
                      f'backup_dir = "{folder / "backups" / name}"\n' + extra(name))
    return blocks


def over_ssh(server: Any) -> Callable[[str], str]:
    """``site_blocks``'s ``extra``: each site reached over SSH through ``server`` (a ``tests.sshd`` server)."""
    def block(name: str) -> str:
        return (f'[sites.ssh]\nhost = "127.0.0.1"\nport = {server.port}\nuser = "{server.user}"\n'
                f'key = "{server.client_key}"\nknown_hosts = "{server.known_hosts}"\n')
    return block
