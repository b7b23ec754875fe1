#!/bin/bash
# bench-stores.sh: ingest throughput and latency of the bbolt store, the
# MySQL store with one sidecar and the MySQL store with three sidecars on
# one database, side by side on this machine (wprelay-bench load, stripe
# kind, 1 KiB bodies, closed loop). MariaDB runs from a temp dir with its
# default durability (innodb_flush_log_at_trx_commit=1), as bbolt fsyncs
# each commit. Rounds alternate the three setups so that drift on a shared
# machine hits them alike.
#
#   scripts/bench-stores.sh [rounds] [requests] [connections]
set -euo pipefail
ROUNDS=${1:-3}
N=${2:-20000}
C=${3:-64}
ROUTE=${ROUTE:-}   # ROUTE=1: route every event to a target (one delivery each)
cd "$(dirname "$0")/.."
DIR=$(mktemp -d /tmp/bench-stores-XXXX)
trap 'for p in $(cat $DIR/pids 2>/dev/null); do kill $p 2>/dev/null || true; done; sleep 1; rm -rf $DIR' EXIT
go build -o $DIR/wprelay ./cmd/wprelay
go build -o $DIR/wprelay-bench ./cmd/wprelay-bench

SECRET=whsec_bench_stripe_0123456789abcdef
SOCK=$DIR/mysqld.sock
USER_ARGS=""; [ "$(id -u)" = 0 ] && USER_ARGS="--user=root"
mariadb-install-db --no-defaults $USER_ARGS --datadir=$DIR/db --auth-root-authentication-method=normal --skip-test-db --innodb-log-file-size=64M >/dev/null
/usr/sbin/mariadbd --no-defaults $USER_ARGS --datadir=$DIR/db --socket=$SOCK --pid-file=$DIR/mysqld.pid --skip-networking \
  --log-error=$DIR/mysqld.err --innodb-buffer-pool-size=512M --innodb-log-file-size=64M --max-connections=500 &
echo $! >> $DIR/pids
for i in $(seq 100); do mariadb-admin --no-defaults --socket=$SOCK -uroot ping >/dev/null 2>&1 && break; sleep 0.1; done
echo "machine: $(nproc) CPUs; $(/usr/sbin/mariadbd --version | awk '{print $3}'); flush_log_at_trx_commit=$(mariadb --no-defaults --socket=$SOCK -uroot -N -e 'select @@innodb_flush_log_at_trx_commit')"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start NAME STOREYAML: starts a sidecar, prints its public address.
start() {
  local d=$DIR/$1; mkdir -p $d
  local extra=""
  if [ -n "$ROUTE" ]; then
    extra="targets:
  - {name: sink, kind: http, url: \"http://127.0.0.1:$SINK_PORT/\", allow_private: true, concurrency: 8}
routes:
  - {source: stripe, to: [sink]}"
  fi
  cat > $d/wprelay.yaml <<YAML
admin: {token: bench-admin-token-0123456789abcdef}
data_dir: $d/data
log: {format: json, level: warn}
store: $2
sources:
  - {name: stripe, kind: stripe, secrets: ["$SECRET"]}
$extra
YAML
  local pub=127.0.0.1:$(free_port) adm=127.0.0.1:$(free_port)
  $DIR/wprelay serve --config $d/wprelay.yaml --listen $pub --admin-listen $adm >$d/log 2>&1 &
  echo $! >> $DIR/pids
  echo $! > $d/pid
  for i in $(seq 300); do curl -fs http://$adm/readyz >/dev/null 2>&1 && break; sleep 0.05; done
  echo $pub
}
stop() { kill -INT $(cat $DIR/$1/pid); while kill -0 $(cat $DIR/$1/pid) 2>/dev/null; do sleep 0.05; done; }

if [ -n "$ROUTE" ]; then
  SINK_PORT=$(free_port)
  $DIR/wprelay-bench bare -listen 127.0.0.1:$SINK_PORT & echo $! >> $DIR/pids
fi

load() { WPRELAY_BENCH_SECRET=$SECRET $DIR/wprelay-bench load -url http://$1/hooks/stripe -n $2 -c $3 -json; }

RES=$DIR/results
for r in $(seq $ROUNDS); do
  # bbolt
  a=$(start bbolt$r "{kind: bbolt}")
  load $a $N $C | sed "s/^/bbolt $r /" >> $RES
  stop bbolt$r
  # MariaDB, one node
  mariadb --no-defaults --socket=$SOCK -uroot -e "CREATE DATABASE one$r"
  a=$(start one$r "{kind: mysql, dsn: \"root@unix($SOCK)/one$r\"}")
  load $a $N $C | sed "s/^/mysql1 $r /" >> $RES
  stop one$r
  # MariaDB, three nodes, one generator each, the connections split
  mariadb --no-defaults --socket=$SOCK -uroot -e "CREATE DATABASE three$r"
  a1=$(start three$r-1 "{kind: mysql, dsn: \"root@unix($SOCK)/three$r\"}")
  a2=$(start three$r-2 "{kind: mysql, dsn: \"root@unix($SOCK)/three$r\"}")
  a3=$(start three$r-3 "{kind: mysql, dsn: \"root@unix($SOCK)/three$r\"}")
  c1=$((C/3 + C%3)); c2=$((C/3)); n1=$((N/3 + N%3)); n2=$((N/3))
  load $a1 $n1 $c1 > $DIR/g1 & g1=$!
  load $a2 $n2 $c2 > $DIR/g2 & g2=$!
  load $a3 $n2 $c2 > $DIR/g3 & g3=$!
  wait $g1 $g2 $g3
  python3 - $DIR/g1 $DIR/g2 $DIR/g3 <<'PY' | sed "s/^/mysql3 $r /" >> $RES
import json, sys
rs = [json.load(open(f)) for f in sys.argv[1:]]
secs = max(r["seconds"] for r in rs)
n = sum(r["requests"] for r in rs)
print(json.dumps({"requests": n, "seconds": secs, "throughput": n / secs,
  "p50_ms": max(r["p50_ms"] for r in rs), "p99_ms": max(r["p99_ms"] for r in rs),
  "errors": sum(r["errors"] for r in rs)}))
PY
  stop three$r-1; stop three$r-2; stop three$r-3
done

python3 - $RES <<'PY'
import json, sys, statistics
rows = {}
for line in open(sys.argv[1]):
    name, rnd, js = line.split(" ", 2)
    rows.setdefault(name, []).append(json.loads(js))
label = {"bbolt": "bbolt (1 sidecar)", "mysql1": "MariaDB, 1 sidecar", "mysql3": "MariaDB, 3 sidecars (3 generators)"}
print(f"{'store':36} {'req/s (median)':>15} {'p99 ms (median)':>16} {'rounds req/s':>24} {'errors':>7}")
for k in ["bbolt", "mysql1", "mysql3"]:
    rs = rows.get(k, [])
    if not rs: continue
    tp = [r["throughput"] for r in rs]; p99 = [r["p99_ms"] for r in rs]
    print(f"{label[k]:36} {statistics.median(tp):15.0f} {statistics.median(p99):16.1f} {' / '.join(f'{x:.0f}' for x in tp):>24} {sum(r['errors'] for r in rs):7d}")
PY
