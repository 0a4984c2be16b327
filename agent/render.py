"""Human-readable renderings of command results (``--json`` bypasses these)."""

from __future__ import annotations

from inventory.models import Extension, SiteInventory


def _update(ext: Extension) -> str:
    if not ext.update_version:
        return "up to date"
    text = f"→ {ext.update_version} ({ext.update_type})"
    if ext.minor_update_version:
        text += f", newest {ext.minor_update_type} {ext.minor_update_version}"
    return text


def inventory_table(inventories: list[SiteInventory]) -> str:
    lines: list[str] = []
    for inv in inventories:
        if inv.core is None:
            lines.append(f"{inv.site}  FAILED  {inv.error}")
            lines.append("")
            continue
        offers = ", ".join(f"{o.version} ({o.type})" for o in inv.core.updates) or "up to date"
        lines.append(
            f"{inv.site}  {'ok' if inv.ok else 'PROBLEM'}  WordPress {inv.core.version} → {offers}"
            f"  PHP {inv.php or '?'}  [{', '.join(inv.sources)}]"
        )
        width = max((len(e.name) for e in inv.plugins + inv.themes), default=10)
        for kind, items in (("plugin", inv.plugins), ("theme", inv.themes)):
            for ext in items:
                lines.append(f"  {kind:<6} {ext.name:<{width}} {ext.version:<10} {ext.status:<9} {_update(ext)}")
        if inv.rest is not None:
            agree = "agrees with WP-CLI" if not inv.rest.disagreements else "; ".join(inv.rest.disagreements)
            lines.append(f"  REST   '{inv.rest.name}' {len(inv.rest.plugins)} plugins: {agree}")
        if inv.error:
            lines.append(f"  error: {inv.error}")
        lines.append("")
    return "\n".join(lines)
