"""Vigil and the county's Zabbix (issue 16): one host a system, the plan's levels as
trigger severities, and Vigil's own heartbeat with a `nodata()` trigger."""
