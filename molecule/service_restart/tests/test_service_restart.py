"""After converge the stand-in voucher library runs and its health endpoint answers."""


def test_the_service_runs(host):  # type: ignore[no-untyped-def]
    assert host.service("voucher-library").is_running


def test_the_health_endpoint_answers(host):  # type: ignore[no-untyped-def]
    assert host.socket("tcp://127.0.0.1:8080").is_listening
    out = host.check_output("curl -fsS http://127.0.0.1:8080/health")
    assert "OK voucher-library" in out
