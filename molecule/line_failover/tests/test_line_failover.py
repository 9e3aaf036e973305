"""After converge, the site router sends its traffic over the backup line."""


def test_default_route_uses_the_backup_line(host):  # type: ignore[no-untyped-def]
    route = host.check_output("ip -o route show default")
    assert route.startswith("default via 10.78.2.2 dev backup0")


def test_the_far_end_answers_through_it(host):  # type: ignore[no-untyped-def]
    assert host.run("ping -n -q -c 2 -W 1 10.78.0.1").rc == 0
