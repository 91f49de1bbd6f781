#!/bin/bash
# 30 s flood of anonymous GET /dashboard against the demo, per store; prints
# requests, RSS before/after, and what the store holds afterwards.
# Usage: flood.sh BIN [seconds]
BIN=${1:-target/debug/nex-demo}; SECS=${2:-30}
redis-server --port 6391 --save '' --appendonly no --daemonize yes --logfile /tmp/flood-redis.log >/dev/null
rm -f /tmp/flood.db*
sleep 0.5
for store in memory "redis://127.0.0.1:6391/0" "sqlite:///tmp/flood.db"; do
  NEX_SESSION_STORE=$store PORT=4077 $BIN >/tmp/flood-demo.log 2>&1 &
  pid=$!; sleep 1.5
  before=$(grep VmRSS /proc/$pid/status | awk '{print $2}')
  out=$(wrk -t2 -c32 -d${SECS}s http://127.0.0.1:4077/dashboard 2>&1)
  reqs=$(echo "$out" | grep 'requests in' | awk '{print $1}')
  non2xx=$(echo "$out" | grep -i 'Non-2xx' | awk '{print $NF}')
  after=$(grep VmRSS /proc/$pid/status | awk '{print $2}')
  hwm=$(grep VmHWM /proc/$pid/status | awk '{print $2}')
  case $store in
    memory) held="(memory store: see RSS)";;
    redis*) held="redis keys: $(redis-cli -p 6391 DBSIZE)";;
    sqlite*) held="sqlite rows: $(python3 -c "import sqlite3;c=sqlite3.connect('/tmp/flood.db');print(c.execute('select count(*) from nex_sessions').fetchone()[0], c.execute('select count(*) from nex_session_fields').fetchone()[0])") ; file $(du -k /tmp/flood.db | cut -f1) KiB";;
  esac
  echo "$store: $reqs requests in ${SECS}s (non-2xx: ${non2xx:-0}); RSS ${before} -> ${after} KiB (peak ${hwm} KiB); $held"
  kill $pid; wait $pid 2>/dev/null
done
redis-cli -p 6391 shutdown nosave >/dev/null 2>&1
