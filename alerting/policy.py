"""Who is told at each mark of the ladder, from the inventory's escalation policy.

Each mark adds to the marks below it (P4.1: III adds the leadership group; II and I add
every party). "Whoever finds it reports it" (P4.2): every opened incident reaches the
implementation team, whatever the policy says. A system's owners (its vendor, its on-site
technician) are told of its faults at every level.
"""

from __future__ import annotations

from vigil.domain import Level, Role
from vigil.model import Contact, Inventory


def recipients(inv: Inventory, party: str, mark: str, system: str = "") -> list[Contact]:
    """Who is told of an incident of `system` (of `party`) at `mark`."""
    chosen: dict[str, Contact] = {}
    owners = inv.systems[system].owners if system in inv.systems else ()
    for c in inv.contacts:  # a system's owners hear of it from level IV on
        if c.id in owners:
            chosen[c.id] = c
    levels = inv.escalation.levels
    for m in (lv for lv in Level if lv.rank <= Level(mark).rank):
        policy = levels.get(m)
        if policy is None:
            continue
        for c in inv.contacts:
            # A party's leaders are told when the policy names the leadership group,
            # not merely because their party is affected.
            operational = set(c.roles) - {Role.LEADERSHIP_GROUP}
            # Onsite technicians work for their own party: another party's are told when
            # every party is (II and I), not for a fault that is not theirs.
            roles = set(c.roles) if c.party == party or policy.all_parties else \
                set(c.roles) - {Role.ONSITE_TECHNICIAN}
            if (roles & set(policy.roles)
                    or (policy.affected_party and c.party == party and operational)
                    or (policy.all_parties and Role.IMPLEMENTATION_TEAM in c.roles)):
                chosen.setdefault(c.id, c)
    for c in inv.contacts_with(Role.IMPLEMENTATION_TEAM):  # P4.2
        chosen.setdefault(c.id, c)
    return list(chosen.values())


def renotify_minutes(inv: Inventory, mark: str) -> float:
    policy = inv.escalation.levels.get(Level(mark))
    if policy is not None and policy.renotify_minutes:
        return float(policy.renotify_minutes)
    return inv.escalation.renotify_minutes
