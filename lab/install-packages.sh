#!/usr/bin/env bash
# Install the Debian packages the lab and the tests need. Idempotent: does nothing
# (not even `apt-get update`) when everything is already installed. Needs root.
set -euo pipefail

PACKAGES=(
  postgresql postgresql-client          # the database hot-standby pair (P4.3.2)
  rabbitmq-server                       # MQ broker with the management plugin (P4.3.7)
  nut-server nut-client                 # UPS over the NUT protocol (P4.3.1 power)
  openssl                               # lab CA, OCSP responder, TLS endpoints (P4.3.6)
  openssh-server openssh-client         # SSH hosts in network namespaces
  iproute2 iputils-ping procps iptables # namespaces, veth lines, ping from the router, cuts
  zabbix-server-pgsql zabbix-frontend-php zabbix-agent php-fpm php-pgsql nginx
                                        # a real Zabbix 6.0 server, API and agent (issue 16)
  monitoring-plugins-basic              # check_tcp/check_http: the check-cycle bench's peer
  chromium chromium-driver              # the duty console in a real browser (issue 15)
  fonts-wqy-zenhei                      # Chinese glyphs for its screenshots
  fence-agents openipmi ipmitool        # fencing a database host through its BMC (issue 18)
  etcd-server postgresql-15-repmgr      # the failover benchmark's peers: Patroni's DCS, repmgr
  prometheus-blackbox-exporter          # the check-cycle benchmark's in-process peer
  make
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
