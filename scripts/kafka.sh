#!/usr/bin/env bash
# A single-node Apache Kafka 4.x broker (KRaft mode) on 127.0.0.1, run from its Maven
# Central jars (resolved with mvn into .cache/kafka/libs; nothing fetched from elsewhere).
#   scripts/kafka.sh start   resolve (first time), format (first time), start, wait until
#                            it answers; print its bootstrap address
#   scripts/kafka.sh stop    stop the broker this script started (by its PID file)
#   scripts/kafka.sh url     print its bootstrap address
# Settings: WK_KAFKA_PORT (59092; the controller listens on the next port),
#           WK_KAFKA_DIR (/tmp/watchkeeper-kafka-$WK_KAFKA_PORT), WK_KAFKA_HEAP (512m).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PORT=${WK_KAFKA_PORT:-59092}
CONTROLLER_PORT=$((PORT + 1))
DIR=${WK_KAFKA_DIR:-/tmp/watchkeeper-kafka-$PORT}
LIBS="$ROOT/.cache/kafka/libs"
HEAP=${WK_KAFKA_HEAP:-512m}
PIDFILE="$DIR/broker.pid"

resolve() {
  if [ ! -f "$LIBS/.complete" ]; then
    command -v mvn >/dev/null || { echo "kafka.sh: mvn is needed to fetch Kafka" >&2; exit 1; }
    rm -rf "$LIBS"
    mvn -q -B -Dstyle.color=never -f scripts/kafka/pom.xml dependency:copy-dependencies \
      -DoutputDirectory="$LIBS" >&2
    touch "$LIBS/.complete"
  fi
}

java_run() {
  java -Xmx"$HEAP" -Xms128m -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" \
    -Dkafka.logs.dir="$DIR" -cp "$LIBS/*" "$@"
}

running() {
  [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null
}

answers() {
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && grep -q "Kafka Server started" "$DIR/server.log" 2>/dev/null
}

start() {
  resolve
  mkdir -p "$DIR"
  if ! running; then
    cat >"$DIR/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DIR/data
num.partitions=4
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=true
log.flush.interval.messages=1000000
log.retention.hours=24
PROPS
    if [ ! -f "$DIR/data/meta.properties" ]; then
      local cluster_id
      cluster_id=$(java_run kafka.tools.StorageTool random-uuid)
      java_run kafka.tools.StorageTool format -t "$cluster_id" -c "$DIR/server.properties" \
        >"$DIR/format.log" 2>&1 || { cat "$DIR/format.log" >&2; exit 1; }
    fi
    rm -f "$DIR/server.log"
    nohup java -Xmx"$HEAP" -Xms256m -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$ROOT/scripts/kafka/log4j2.properties" \
      -Dkafka.logs.dir="$DIR" -cp "$LIBS/*" kafka.Kafka "$DIR/server.properties" \
      >"$DIR/stdout.log" 2>&1 </dev/null &
    echo $! >"$PIDFILE"
  fi
  for _ in $(seq 1 240); do
    answers && { echo "127.0.0.1:$PORT"; return 0; }
    running || { echo "kafka.sh: the broker exited" >&2; tail -n 30 "$DIR/stdout.log" "$DIR/server.log" >&2 2>/dev/null; exit 1; }
    sleep 0.5
  done
  echo "kafka.sh: the broker did not answer within 120 s" >&2
  exit 1
}

stop() {
  running || { rm -f "$PIDFILE"; return 0; }
  local pid; pid=$(cat "$PIDFILE")
  kill "$pid"
  for _ in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; return 0; }
    sleep 0.5
  done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  url) echo "127.0.0.1:$PORT" ;;
  *) echo "usage: $0 start|stop|url" >&2; exit 2 ;;
esac
