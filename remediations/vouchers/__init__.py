"""Voucher work: the parties' voucher libraries (sources, records), reconciliation,
supplementary vouchers (补录凭证) and the offline exchange bundles with their suites.
Apart from plan execution (runbook, steps, executor), which never imports it back."""
