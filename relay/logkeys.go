package relay

// Log keys: every log line of ingress, the dispatcher, the admin API and
// cmd/wprelay names what it is about with these keys, so that a log query
// ("event_id = …") finds every line about one thing.
const (
	LogKeyComponent  = "component"   // ingress, deliver, admin, store
	LogKeyError      = "error"       // what went wrong
	LogKeyEventID    = "event_id"    // Event.ID
	LogKeyDeliveryID = "delivery_id" // "{event id}:{target}", the Idempotency-Key
	LogKeyRequestID  = "request_id"  // X-Request-Id of a request or attempt
	LogKeyTraceID    = "trace_id"    // the trace id of the event's traceparent
	LogKeySource     = "source"
	LogKeyTenant     = "tenant"
	LogKeyType       = "type" // the event type
	LogKeyTarget     = "target"
	LogKeyAttempt    = "attempt"    // the attempt's number, from 1
	LogKeyStatus     = "status"     // an HTTP status
	LogKeyOutcome    = "outcome"    // what a request or attempt did (queued, duplicate, retrying, …)
	LogKeyCode       = "code"       // an ingest rejection's error code
	LogKeyLatencyMS  = "latency_ms" // how long a request or attempt took
	LogKeyDuration   = "duration_ms"
	LogKeyTook       = "took"
	LogKeyResultID   = "result_id"
	LogKeyOutOfOrder = "out_of_order"
	LogKeyNextAt     = "next_at"
	LogKeyEvents     = "events"     // a count of events
	LogKeyDeliveries = "deliveries" // a count of deliveries
	LogKeyBytes      = "bytes"
	LogKeyImported   = "imported"
	LogKeyDuplicates = "duplicates"
	LogKeyFailed     = "failed"
	LogKeyRecords    = "records"
	LogKeyVersion    = "version"
	LogKeyListen     = "listen"
	LogKeyAdmin      = "admin"
	LogKeyListener   = "listener"
	LogKeyDataDir    = "data_dir"
	LogKeySources    = "sources"
	LogKeyTargets    = "targets"
	LogKeyGrace      = "grace"
	LogKeyKind       = "kind"  // a source kind
	LogKeyField      = "field" // a template field, ".data.object.amount_due"
	// The stores' lines.
	LogKeyPath        = "path"
	LogKeyCommit      = "commit" // the commit mode
	LogKeyPending     = "pending"
	LogKeyRecovered   = "recovered_in_flight"
	LogKeyCalls       = "calls"
	LogKeyOps         = "ops"
	LogKeyServer      = "server"
	LogKeyTablePrefix = "table_prefix"
	LogKeyNode        = "node"
	LogKeyMaxConns    = "max_conns"
)
