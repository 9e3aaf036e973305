"""A real Zabbix 6.0 in the lab: the server on a PostgreSQL cluster of its own, the PHP
frontend with its JSON-RPC API behind nginx, and an agent on the lab host lab-app1 (issue 16).

    server   127.0.0.1:10051 (trapper)     database  127.0.0.1:5435 (its own cluster)
    frontend http://127.0.0.1:10080/api_jsonrpc.php (Admin / lab-only-zbx-7c1e)
    agent    10.77.0.11:10050 in vgl-app1 (the lab network's SSH host)

Its own cluster, not the lab's pair: the tests stop and promote that pair on purpose.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

from vigil.lab.base import Component, Health
from vigil.lab.net import MONITOR_ADDR, SSH_HOSTS
from vigil.lab.pg import pg_bin
from vigil.lab.procs import (
    LabError,
    alive,
    port_open,
    read_pid,
    run,
    spawn,
    stop,
    wait_for,
)

DB_PORT = 5435
TRAPPER_PORT = 10051
WEB_PORT = 10080
AGENT_PORT = 10050
API_URL = f"http://127.0.0.1:{WEB_PORT}/api_jsonrpc.php"
# The package's initial account, the lab's only, with a password of its own: "zabbix", the
# package's, is a word Vigil's secret scrubbing would mask in every event that says it.
ADMIN = ("Admin", "lab-only-zbx-7c1e")
INITIAL_PASSWORD = "zabbix"
DB_PASSWORD = "lab-only-zabbix"
SCHEMA = Path("/usr/share/zabbix-server-pgsql")
FRONTEND = Path("/usr/share/zabbix")
# The frontend reads its settings from this one place only (lab notes).
FRONTEND_CONF = Path("/etc/zabbix/zabbix.conf.php")
AGENT_HOST = SSH_HOSTS[0]  # lab-app1


def api_version() -> str:
    """The lab's readiness check, through pyzabbix like Vigil itself."""
    from pyzabbix import ZabbixAPI

    return str(ZabbixAPI(f"http://127.0.0.1:{WEB_PORT}", timeout=5).api_version())


class Zabbix(Component):
    name = "zabbix"

    @property
    def data(self) -> Path:
        return self.dir / "pg"

    @property
    def run_dir(self) -> Path:
        return self.dir / "run"

    def up(self) -> None:
        for binary in ("zabbix_server", "zabbix_agentd", "php-fpm8.2", "nginx"):
            if not shutil.which(binary, path="/usr/sbin:/usr/bin"):
                raise LabError(f"{binary} is not installed (run lab/install-packages.sh)")
        self.run_dir.mkdir(exist_ok=True)
        shutil.chown(self.dir, "zabbix", "zabbix")
        shutil.chown(self.run_dir, "zabbix", "zabbix")
        self._database()
        self._frontend()
        self._server()
        self._admin_password()
        self._agent()

    # --- the database --------------------------------------------------------------------

    def _database(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            self.data.mkdir(exist_ok=True)
            shutil.chown(self.data, "postgres", "postgres")
            run([str(pg_bin() / "initdb"), "-D", str(self.data), "-U", "postgres",
                 "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"], user="postgres")
            with (self.data / "postgresql.conf").open("a") as fh:
                fh.write(f"\nlisten_addresses = '127.0.0.1'\nport = {DB_PORT}\n"
                         "unix_socket_directories = ''\nfsync = off\n")  # TCP only
        if not (alive(read_pid(self.data / "postmaster.pid")) and
                port_open("127.0.0.1", DB_PORT)):
            run([str(pg_bin() / "pg_ctl"), "-D", str(self.data), "-l",
                 str(self.data / "server.log"), "-w", "-t", "60", "start"], user="postgres",
                timeout=90)
        loaded = self.dir / "schema-loaded"
        if loaded.exists():
            return
        self._psql("postgres", f"CREATE ROLE zabbix LOGIN PASSWORD '{DB_PASSWORD}'")
        self._psql("postgres", "CREATE DATABASE zabbix OWNER zabbix ENCODING 'UTF8' "
                   "TEMPLATE template0")
        for part in ("schema", "images", "data"):
            run(["sh", "-c", f"zcat {SCHEMA / part}.sql.gz | psql -h 127.0.0.1 -p {DB_PORT} "
                 "-U zabbix -d zabbix -q -v ON_ERROR_STOP=1 >/dev/null"], timeout=600)
        loaded.touch()

    def _psql(self, db: str, sql: str) -> str:
        return run(["psql", "-h", "127.0.0.1", "-p", str(DB_PORT), "-U", "postgres", "-d", db,
                    "-AtXq", "-c", sql]).stdout.strip()

    # --- the frontend and its API ----------------------------------------------------------

    def _frontend(self) -> None:
        FRONTEND_CONF.parent.mkdir(parents=True, exist_ok=True)
        FRONTEND_CONF.write_text(f"""<?php
// Written by `vigil lab up` (vigil/lab/zabbix.py): the lab's Zabbix frontend.
$DB['TYPE'] = 'POSTGRESQL';
$DB['SERVER'] = '127.0.0.1';
$DB['PORT'] = '{DB_PORT}';
$DB['DATABASE'] = 'zabbix';
$DB['USER'] = 'zabbix';
$DB['PASSWORD'] = '{DB_PASSWORD}';
$DB['SCHEMA'] = '';
$DB['ENCRYPTION'] = false;
$DB['KEY_FILE'] = '';
$DB['CERT_FILE'] = '';
$DB['CA_FILE'] = '';
$DB['VERIFY_HOST'] = false;
$DB['CIPHER_LIST'] = '';
$DB['VAULT_URL'] = '';
$DB['VAULT_DB_PATH'] = '';
$DB['VAULT_TOKEN'] = '';
$DB['DOUBLE_IEEE754'] = true;
$ZBX_SERVER = '127.0.0.1';
$ZBX_SERVER_PORT = '{TRAPPER_PORT}';
$ZBX_SERVER_NAME = 'vigil-lab';
$IMAGE_FORMAT_DEFAULT = IMAGE_FORMAT_PNG;
""")
        FRONTEND_CONF.chmod(0o644)
        socket = self.run_dir / "php-fpm.sock"
        fpm = self.dir / "php-fpm.conf"
        fpm.write_text(f"""[global]
pid = {self.dir / 'php-fpm.pid'}
error_log = {self.dir / 'php-fpm.log'}
daemonize = no

[zabbix]
user = www-data
group = www-data
listen = {socket}
listen.mode = 0666
pm = static
pm.max_children = 3
php_value[post_max_size] = 16M
php_value[max_execution_time] = 300
php_value[max_input_time] = 300
php_value[date.timezone] = Asia/Shanghai
""")
        if not alive(read_pid(self.dir / "php-fpm.pid")):
            spawn(["php-fpm8.2", "--nodaemonize", "--fpm-config", str(fpm)],
                  self.dir / "php-fpm.out")
            wait_for(socket.exists, "php-fpm", 20)
        nginx = self.dir / "nginx.conf"
        temp = self.dir / "nginx-temp"
        temp.mkdir(exist_ok=True)
        nginx.write_text(f"""daemon off;
pid {self.dir / 'nginx.pid'};
error_log {self.dir / 'nginx-error.log'};
events {{}}
http {{
  include /etc/nginx/mime.types;
  access_log off;
  client_body_temp_path {temp}/body;
  fastcgi_temp_path {temp}/fastcgi;
  proxy_temp_path {temp}/proxy;
  uwsgi_temp_path {temp}/uwsgi;
  scgi_temp_path {temp}/scgi;
  server {{
    listen 127.0.0.1:{WEB_PORT};
    root {FRONTEND};
    index index.php;
    location ~ \\.php$ {{
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
      fastcgi_pass unix:{socket};
    }}
  }}
}}
""")
        if not alive(read_pid(self.dir / "nginx.pid")):
            spawn(["nginx", "-c", str(nginx)], self.dir / "nginx.out")
        wait_for(lambda: port_open("127.0.0.1", WEB_PORT), "nginx", 20)

    # --- the server and the agent -----------------------------------------------------------

    def _server(self) -> None:
        conf = self.dir / "zabbix_server.conf"
        conf.write_text("\n".join([
            f"LogFile={self.dir / 'zabbix_server.log'}", f"PidFile={self.run_dir / 'server.pid'}",
            f"SocketDir={self.run_dir}", "DBHost=127.0.0.1", f"DBPort={DB_PORT}",
            "DBName=zabbix", "DBUser=zabbix", f"DBPassword={DB_PASSWORD}",
            "ListenIP=127.0.0.1", f"ListenPort={TRAPPER_PORT}",
            # A small lab: few processes, and configuration read soon after a change.
            "StartPollers=2", "StartPollersUnreachable=1", "StartTrappers=3",
            "StartDiscoverers=0", "StartHTTPPollers=0", "StartPreprocessors=2",
            "CacheUpdateFrequency=10", "Timeout=4", ""]))
        if not self._server_pid():
            spawn(["runuser", "-u", "zabbix", "--", "zabbix_server", "--foreground",
                   "--config", str(conf)], self.dir / "zabbix_server.out")
        wait_for(lambda: port_open("127.0.0.1", TRAPPER_PORT), "zabbix_server", 60)
        wait_for(self._api_ready, "the Zabbix API", 60)

    def _admin_password(self) -> None:
        from pyzabbix import ZabbixAPI, ZabbixAPIException

        api = ZabbixAPI(f"http://127.0.0.1:{WEB_PORT}", timeout=10)
        try:
            api.login(*ADMIN)
            return
        except ZabbixAPIException:
            api.login(ADMIN[0], INITIAL_PASSWORD)  # a new database: set the lab's own
        (admin,) = api.user.get(filter={"username": ADMIN[0]}, output=["userid"])
        api.user.update(userid=admin["userid"], passwd=ADMIN[1])  # 6.4 on: current_passwd

    def _server_pid(self) -> int | None:
        pid = read_pid(self.run_dir / "server.pid")
        return pid if alive(pid) else None

    def _api_ready(self) -> bool:
        try:
            return bool(api_version())
        except Exception:  # not yet up: refused, a 502 from nginx, no JSON
            return False

    def _agent(self) -> None:
        conf = self.dir / "zabbix_agentd.conf"
        conf.write_text("\n".join([
            f"LogFile={self.dir / 'zabbix_agentd.log'}", f"PidFile={self.run_dir / 'agentd.pid'}",
            f"Server={MONITOR_ADDR},127.0.0.1", f"ListenIP={AGENT_HOST.address}",
            f"ListenPort={AGENT_PORT}", "Hostname=lab-app1", "StartAgents=2", ""]))
        if not alive(read_pid(self.run_dir / "agentd.pid")):
            spawn(["runuser", "-u", "zabbix", "--", "zabbix_agentd", "--foreground",
                   "--config", str(conf)], self.dir / "zabbix_agentd.out",
                  netns=AGENT_HOST.netns)
        wait_for(lambda: port_open(AGENT_HOST.address, AGENT_PORT), "zabbix_agentd", 20)

    def stop_server(self) -> None:
        """For tests: Zabbix's server away (trapper and all) while the rest stays up."""
        stop(self._server_pid(), "zabbix_server", timeout=60)

    # --- down and status -------------------------------------------------------------------

    def down(self) -> None:
        stop(read_pid(self.run_dir / "agentd.pid"), "zabbix_agentd")
        # The server first, and wait for it to exit, then its database (lab notes).
        stop(self._server_pid(), "zabbix_server", timeout=60)
        stop(read_pid(self.dir / "nginx.pid"), "nginx", sig=signal.SIGQUIT)
        stop(read_pid(self.dir / "php-fpm.pid"), "php-fpm", sig=signal.SIGQUIT)
        stop(read_pid(self.data / "postmaster.pid"), "postgres", sig=signal.SIGINT,
             timeout=60)

    def status(self) -> list[Health]:
        server = bool(self._server_pid()) and port_open("127.0.0.1", TRAPPER_PORT)
        web = port_open("127.0.0.1", WEB_PORT) and self._api_ready()
        agent = port_open(AGENT_HOST.address, AGENT_PORT)
        return [
            Health("zabbix-server", server,
                   f"127.0.0.1:{TRAPPER_PORT}" if server else "stopped"),
            Health("zabbix-api", web, API_URL if web else "stopped"),
            Health("zabbix-agent", agent,
                   f"{AGENT_HOST.address}:{AGENT_PORT}" if agent else "stopped"),
        ]
