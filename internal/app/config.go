// The configuration of a process: flags, PARLEY_* variables, defaults.

package app

import (
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/internal/contentkeys"

	"github.com/parley-chat/parley/gateway"
	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/internal/embeddedkafka"
	"github.com/parley-chat/parley/internal/kafkalog"
	"github.com/parley-chat/parley/schemas"
)

// DevSecret signs tokens on the embedded default when PARLEY_JWT_SECRET
// is not set. It is public, so it is refused whenever Parley runs against
// an external Kafka cluster.
const DevSecret = "parley-embedded-dev-secret-not-for-production"

// Config is the configuration of every role. Each field is a flag and a
// PARLEY_* environment variable (the flag wins); Settings lists them with
// their defaults, and the README's configuration table is made from it.
type Config struct {
	DataDir           string
	Roles             string
	HTTPAddr          string
	KafkaBrokers      []string
	TopicPrefix       string
	KafkaListen       string
	KafkaSyncWrites   bool
	Partitions        int
	ReplicationFactor int
	MinInsyncReplicas int
	JWTSecret         string
	// ContentKEK is the base64 of the key-encryption key of content
	// sealing (crypto-shredding); empty: events are not sealed.
	ContentKEK string
	// AdminUsers may erase users (POST /v1/users/{id}/erase).
	AdminUsers        []string
	JWTIssuer         string
	JWTAudience       string
	JWTLeeway         time.Duration
	OIDCIssuers       []string
	OIDCAudience      string
	OIDCUserClaim     string
	MaxBodyBytes      int
	MaxMembers        int
	MaxTitleRunes     int
	MaxReactions      int
	EditWindow        time.Duration
	CommandTimeout    time.Duration
	CommandLinger     time.Duration
	BackfillLimit     int
	ConversationCache int
	PresenceCache     int
	SendQueue         int
	NodeID            string
	Routing           string
	LogLevel          string
	LogFormat         string
	ShutdownTimeout   time.Duration
	PresenceTimeout   time.Duration
	PresenceHeartbeat time.Duration
	ElasticsearchURL  []string
	ScyllaHosts       []string
	ScyllaKeyspace    string
	ScyllaConsistency string
	ScyllaReplication string
	ScyllaLocalDC     string
	PprofAddr         string

	// The edge's limits (README, Limits).
	MaxInFlight           int
	MaxAwaiting           int
	DiskReserve           int
	WSAuthTimeout         time.Duration
	SSEHeartbeat          time.Duration
	MaxSocketsPerUser     int
	UserCommandRate       float64
	UserCommandBurst      int
	UserRequestRate       float64
	UserRequestBurst      int
	IPConnectRate         float64
	IPConnectBurst        int
	IPAuthFailureRate     float64
	IPAuthFailureBurst    int
	TrustedProxies        []string
	RateLimitExempt       []string
	HTTPReadHeaderTimeout time.Duration
	HTTPIdleTimeout       time.Duration

	// Files (README.md, "Files").
	S3Endpoint     string
	S3PublicURL    string
	S3Bucket       string
	S3Region       string
	S3AccessKey    string
	S3SecretKey    string
	S3Listen       string
	MaxFileBytes   int
	FileTypes      []string
	UploadsPerHour int
	MaxAttachments int
	UploadTTL      time.Duration
	UploadURLTTL   time.Duration
	DownloadURLTTL time.Duration

	// Push notifications (README.md, "Push notifications").
	PushWindow       time.Duration
	PushMaxAge       time.Duration
	PushPreviewRunes int
	VAPIDPublicKey   string
	VAPIDPrivateKey  string
	VAPIDSubject     string
	WebPushHosts     []string
	FCMProject       string
	FCMCredentials   string
	FCMEndpoint      string
	APNsKeyFile      string
	APNsKeyID        string
	APNsTeamID       string
	APNsTopic        string
	APNsHost         string
}

// Setting is one configuration setting.
type Setting struct {
	Flag, Env, Default, Help string
	set                      func(c *Config, v string) error
}

// Settings returns every setting, in the order of the README table.
func Settings() []Setting {
	str := func(p func(*Config) *string) func(*Config, string) error {
		return func(c *Config, v string) error { *p(c) = v; return nil }
	}
	num := func(p func(*Config) *int) func(*Config, string) error {
		return func(c *Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("not an integer: %q", v)
			}
			*p(c) = n
			return nil
		}
	}
	partitions := func(c *Config, v string) error {
		if v == "auto" {
			c.Partitions = 0
			return nil
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("not auto or a positive integer: %q", v)
		}
		c.Partitions = n
		return nil
	}
	dur := func(p func(*Config) *time.Duration) func(*Config, string) error {
		return func(c *Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("not a duration: %q", v)
			}
			*p(c) = d
			return nil
		}
	}
	float := func(p func(*Config) *float64) func(*Config, string) error {
		return func(c *Config, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("not a number: %q", v)
			}
			*p(c) = f
			return nil
		}
	}
	boolean := func(p func(*Config) *bool) func(*Config, string) error {
		return func(c *Config, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("not true or false: %q", v)
			}
			*p(c) = b
			return nil
		}
	}
	list := func(p func(*Config) *[]string) func(*Config, string) error {
		return func(c *Config, v string) error {
			*p(c) = nil
			for _, b := range strings.Split(v, ",") {
				if b = strings.TrimSpace(b); b != "" {
					*p(c) = append(*p(c), b)
				}
			}
			return nil
		}
	}
	host, _ := os.Hostname()
	return []Setting{
		{"roles", "PARLEY_ROLES", "all", "the roles `parley run` runs in this process: all, or some of gateway, decider, history, search, router, files, push, separated by commas", str(func(c *Config) *string { return &c.Roles })},
		{"data-dir", "PARLEY_DATA_DIR", "./data", "where the embedded broker and stores keep their files", str(func(c *Config) *string { return &c.DataDir })},
		{"http-addr", "PARLEY_HTTP_ADDR", "127.0.0.1:8080", "HTTP and WebSocket listen address (every role serves /healthz, /readyz, /metrics here); with the dev secret only a loopback address is accepted", str(func(c *Config) *string { return &c.HTTPAddr })},
		{"kafka-brokers", "PARLEY_KAFKA_BROKERS", "", "comma-separated Kafka bootstrap brokers; empty runs the embedded broker", list(func(c *Config) *[]string { return &c.KafkaBrokers })},
		{"topic-prefix", "PARLEY_TOPIC_PREFIX", "", "prefix of every Kafka topic name and consumer group id, so that several deployments share a cluster", str(func(c *Config) *string { return &c.TopicPrefix })},
		{"scylla-hosts", "PARLEY_SCYLLA_HOSTS", "", "comma-separated ScyllaDB contact points (host or host:port) of the history store and the gateways' shared key directory; empty uses the embedded Pebble stores", list(func(c *Config) *[]string { return &c.ScyllaHosts })},
		{"scylla-keyspace", "PARLEY_SCYLLA_KEYSPACE", "parley", "keyspace of the history tables, created if missing", str(func(c *Config) *string { return &c.ScyllaKeyspace })},
		{"scylla-consistency", "PARLEY_SCYLLA_CONSISTENCY", "LOCAL_QUORUM", "consistency level of every history read and write", str(func(c *Config) *string { return &c.ScyllaConsistency })},
		{"scylla-replication", "PARLEY_SCYLLA_REPLICATION", "", "replication of a new keyspace, e.g. class=NetworkTopologyStrategy,dc1=3 (empty: SimpleStrategy, 1 replica)", str(func(c *Config) *string { return &c.ScyllaReplication })},
		{"scylla-local-dc", "PARLEY_SCYLLA_LOCAL_DC", "", "prefer replicas of this data centre", str(func(c *Config) *string { return &c.ScyllaLocalDC })},
		{"elasticsearch-url", "PARLEY_ELASTICSEARCH_URL", "", "comma-separated Elasticsearch URLs; empty uses the embedded Bleve index under data-dir/search", list(func(c *Config) *[]string { return &c.ElasticsearchURL })},
		{"kafka-listen", "PARLEY_KAFKA_LISTEN", "127.0.0.1:9092", "listen address of the embedded broker, which has no authentication; with the dev secret only a loopback address is accepted", str(func(c *Config) *string { return &c.KafkaListen })},
		{"kafka-sync-writes", "PARLEY_KAFKA_SYNC_WRITES", "false", "true: the embedded broker syncs every batch it appends to disk before acknowledging it, so that an acknowledged message survives a crash of the machine, not only of the process, at several times the latency under load (false: it leaves them to the operating system, as Kafka does by default)", boolean(func(c *Config) *bool { return &c.KafkaSyncWrites })},
		{"partitions", "PARLEY_PARTITIONS", "auto", "partitions of chat.commands, chat.events, chat.replies; fixed once chosen. auto: as many as the existing topics have, else 4 on the embedded broker (one machine) and 12 on a Kafka cluster", partitions},
		{"replication-factor", "PARLEY_REPLICATION_FACTOR", "1", "replication factor of Parley's topics when Parley creates them (3 in production)", num(func(c *Config) *int { return &c.ReplicationFactor })},
		{"min-insync-replicas", "PARLEY_MIN_INSYNC_REPLICAS", "1", "min.insync.replicas of Parley's topics when Parley creates them: replicas that must have a record before a write is acknowledged (2 in production, at most the replication factor)", num(func(c *Config) *int { return &c.MinInsyncReplicas })},
		{"jwt-secret", "PARLEY_JWT_SECRET", "", "HS256 secret, at least 32 bytes; empty uses the public dev secret, embedded default only", str(func(c *Config) *string { return &c.JWTSecret })},
		{"content-kek", "PARLEY_CONTENT_KEK", "", "base64 of a 32-byte key-encryption key; set, message bodies, file names and titles are sealed with a data key of their author (crypto-shredding: POST /v1/users/{id}/erase destroys it), the keys wrapped by this one and kept under data-dir/contentkeys (every role then in one process) or, with PARLEY_SCYLLA_HOSTS, in the keyspace's content_keys table", str(func(c *Config) *string { return &c.ContentKEK })},
		{"admin-users", "PARLEY_ADMIN_USERS", "", "comma-separated user ids of the administrators: the only users who may erase a user (POST /v1/users/{id}/erase)", list(func(c *Config) *[]string { return &c.AdminUsers })},
		{"jwt-issuer", "PARLEY_JWT_ISSUER", "parley", "required iss claim", str(func(c *Config) *string { return &c.JWTIssuer })},
		{"jwt-audience", "PARLEY_JWT_AUDIENCE", "parley", "required aud claim", str(func(c *Config) *string { return &c.JWTAudience })},
		{"jwt-leeway", "PARLEY_JWT_LEEWAY", "5s", "clock skew tolerated on a token's exp and nbf, the same over HTTP and WebSocket (0: none, at most 5m)", dur(func(c *Config) *time.Duration { return &c.JWTLeeway })},
		{"oidc-issuer", "PARLEY_OIDC_ISSUER", "", "comma-separated OpenID Connect issuer URLs, exactly as in their tokens' iss; set, only their tokens are accepted (keys from /.well-known/openid-configuration and the JWKS, refreshed on rotation) and HS256 tokens are refused", list(func(c *Config) *[]string { return &c.OIDCIssuers })},
		{"oidc-audience", "PARLEY_OIDC_AUDIENCE", "", "required aud claim of OIDC tokens, usually the client id Parley is registered under; required with PARLEY_OIDC_ISSUER", str(func(c *Config) *string { return &c.OIDCAudience })},
		{"oidc-user-claim", "PARLEY_OIDC_USER_CLAIM", "sub", "claim of an OIDC token that is the Parley user id: sub, preferred_username or email; a value that is not a valid user id is refused", str(func(c *Config) *string { return &c.OIDCUserClaim })},
		{"max-message-bytes", "PARLEY_MAX_MESSAGE_BYTES", "16384", "largest message body in bytes", num(func(c *Config) *int { return &c.MaxBodyBytes })},
		{"max-members", "PARLEY_MAX_MEMBERS", "10000", "largest group, in members", num(func(c *Config) *int { return &c.MaxMembers })},
		{"max-title-chars", "PARLEY_MAX_TITLE_CHARS", "200", "longest group title, in characters", num(func(c *Config) *int { return &c.MaxTitleRunes })},
		{"max-reactions", "PARLEY_MAX_REACTIONS", "50", "most different emoji reactions on one message", num(func(c *Config) *int { return &c.MaxReactions })},
		{"edit-window", "PARLEY_EDIT_WINDOW", "15m", "how long after sending its author may edit a message", dur(func(c *Config) *time.Duration { return &c.EditWindow })},
		{"command-timeout", "PARLEY_COMMAND_TIMEOUT", "10s", "how long a request waits for the decider's answer", dur(func(c *Config) *time.Duration { return &c.CommandTimeout })},
		{"command-linger", "PARLEY_COMMAND_LINGER", "1ms", "how long a command that finds its partition idle waits for others to join it in one produce request, when the partition's commands come less than four lingers apart on average (quieter partitions send at once); 0 sends it at once at any rate (less latency, more CPU per message)", dur(func(c *Config) *time.Duration { return &c.CommandLinger })},
		{"conversation-cache", "PARLEY_CONVERSATION_CACHE", "100000", "conversations each gateway node, router and decider keeps in memory (members, newest seq); the least recently used beyond it are loaded again when needed (from history; the decider's from its store under data-dir/decider)", num(func(c *Config) *int { return &c.ConversationCache })},
		{"presence-cache", "PARLEY_PRESENCE_CACHE", "100000", "offline users whose last-seen time each gateway node keeps in memory; beyond it the least recently seen are shown offline without one until they connect again", num(func(c *Config) *int { return &c.PresenceCache })},
		{"backfill-limit", "PARLEY_BACKFILL_LIMIT", "1000", "most events one conversation backfills on resume; older ones are announced as a gap", num(func(c *Config) *int { return &c.BackfillLimit })},
		{"send-queue", "PARLEY_SEND_QUEUE", "512", "frames queued per socket before it is closed as a slow consumer (4000)", num(func(c *Config) *int { return &c.SendQueue })},
		{"max-inflight", "PARLEY_MAX_INFLIGHT", "256", "most requests of one socket waiting for their answer; beyond it the server stops reading the socket until one is answered", num(func(c *Config) *int { return &c.MaxInFlight })},
		{"max-awaiting", "PARLEY_MAX_AWAITING", "8192", "most commands a gateway node has taken and not yet answered (queued for the log or waiting for the decider); beyond it a command is refused at once with overloaded, appending nothing", num(func(c *Config) *int { return &c.MaxAwaiting })},
		{"disk-reserve", "PARLEY_DISK_RESERVE", "536870912", "free space in bytes the file system of data-dir keeps on the embedded default: below it the node refuses every command, read marker and upload at once (unavailable, nothing appended) until space is freed, so that the broker and the stores never run out (0: no reserve)", num(func(c *Config) *int { return &c.DiskReserve })},
		{"ws-auth-timeout", "PARLEY_WS_AUTH_TIMEOUT", "10s", "how long a socket without an Authorization header may take to send its auth frame before it is closed with 4500", dur(func(c *Config) *time.Duration { return &c.WSAuthTimeout })},
		{"sse-heartbeat", "PARLEY_SSE_HEARTBEAT", "15s", "how often an idle Server-Sent Events stream (GET /v1/events) gets a comment line, so that proxies do not close it", dur(func(c *Config) *time.Duration { return &c.SSEHeartbeat })},
		{"max-sockets-per-user", "PARLEY_MAX_SOCKETS_PER_USER", "100", "most sockets and SSE streams one user may have open on one gateway node; more are refused with 429 at the upgrade, or the close 1013 after a first-frame auth (0: no limit)", num(func(c *Config) *int { return &c.MaxSocketsPerUser })},
		{"user-command-rate", "PARLEY_USER_COMMAND_RATE", "100", "commands per second one user may send on one gateway node, WebSocket frames that append (send, edit, delete, react, unreact, read, presence_set) and HTTP writes together; more get rate_limited or 429 (0: no limit)", float(func(c *Config) *float64 { return &c.UserCommandRate })},
		{"user-command-burst", "PARLEY_USER_COMMAND_BURST", "200", "commands one user may send at once above the rate", num(func(c *Config) *int { return &c.UserCommandBurst })},
		{"user-request-rate", "PARLEY_USER_REQUEST_RATE", "200", "requests per second of one user on one gateway node: authenticated HTTP requests, reads and writes, and the WebSocket resume and presence_watch frames; more get 429 or rate_limited (0: no limit)", float(func(c *Config) *float64 { return &c.UserRequestRate })},
		{"user-request-burst", "PARLEY_USER_REQUEST_BURST", "400", "requests one user may send at once above the rate", num(func(c *Config) *int { return &c.UserRequestBurst })},
		{"ip-connect-rate", "PARLEY_IP_CONNECT_RATE", "1000", "WebSocket upgrades per second from one client address on one gateway node; more get 429 (0: no limit)", float(func(c *Config) *float64 { return &c.IPConnectRate })},
		{"ip-connect-burst", "PARLEY_IP_CONNECT_BURST", "2000", "upgrades one address may make at once above the rate", num(func(c *Config) *int { return &c.IPConnectBurst })},
		{"ip-auth-failure-rate", "PARLEY_IP_AUTH_FAILURE_RATE", "10", "failed authentications per second from one client address; beyond it the address's requests without a valid token get 429 instead of 401 (0: no limit)", float(func(c *Config) *float64 { return &c.IPAuthFailureRate })},
		{"ip-auth-failure-burst", "PARLEY_IP_AUTH_FAILURE_BURST", "100", "failed authentications one address may make at once above the rate", num(func(c *Config) *int { return &c.IPAuthFailureBurst })},
		{"trusted-proxies", "PARLEY_TRUSTED_PROXIES", "", "comma-separated addresses or CIDR prefixes of the load balancers whose X-Forwarded-For gives the client address; from any other peer the peer is the client", list(func(c *Config) *[]string { return &c.TrustedProxies })},
		{"rate-limit-exempt", "PARLEY_RATE_LIMIT_EXEMPT", "127.0.0.0/8,::1", "comma-separated client addresses or CIDR prefixes the per-address limits do not apply to (the per-user ones still do): by default loopback, where local tools and the load generator connect from; empty exempts none", list(func(c *Config) *[]string { return &c.RateLimitExempt })},
		{"http-read-header-timeout", "PARLEY_HTTP_READ_HEADER_TIMEOUT", "10s", "how long a client may take to send a request's headers before its connection is closed", dur(func(c *Config) *time.Duration { return &c.HTTPReadHeaderTimeout })},
		{"http-idle-timeout", "PARLEY_HTTP_IDLE_TIMEOUT", "2m", "how long an idle keep-alive HTTP connection is kept open (not a WebSocket)", dur(func(c *Config) *time.Duration { return &c.HTTPIdleTimeout })},
		{"s3-endpoint", "PARLEY_S3_ENDPOINT", "", "S3 API URL of the file store (AWS S3, Ceph RGW, SeaweedFS, Garage, R2, versitygw…; path-style); empty runs the embedded S3 server under data-dir/files", str(func(c *Config) *string { return &c.S3Endpoint })},
		{"s3-public-url", "PARLEY_S3_PUBLIC_URL", "", "URL clients reach the file store at, which presigned URLs name (empty: the endpoint)", str(func(c *Config) *string { return &c.S3PublicURL })},
		{"s3-bucket", "PARLEY_S3_BUCKET", "parley-files", "bucket of every file, created if missing", str(func(c *Config) *string { return &c.S3Bucket })},
		{"s3-region", "PARLEY_S3_REGION", "us-east-1", "SigV4 signing region of the file store", str(func(c *Config) *string { return &c.S3Region })},
		{"s3-access-key", "PARLEY_S3_ACCESS_KEY", "", "access key of the file store; required with PARLEY_S3_ENDPOINT", str(func(c *Config) *string { return &c.S3AccessKey })},
		{"s3-secret-key", "PARLEY_S3_SECRET_KEY", "", "secret key of the file store; required with PARLEY_S3_ENDPOINT", str(func(c *Config) *string { return &c.S3SecretKey })},
		{"s3-listen", "PARLEY_S3_LISTEN", "127.0.0.1:0", "listen address of the embedded S3 server (port 0: any free port; presigned URLs name it); off runs none, and without PARLEY_S3_ENDPOINT uploads are then refused", str(func(c *Config) *string { return &c.S3Listen })},
		{"max-file-bytes", "PARLEY_MAX_FILE_BYTES", "104857600", "largest file one upload may be, in bytes", num(func(c *Config) *int { return &c.MaxFileBytes })},
		{"file-types", "PARLEY_FILE_TYPES", "", "comma-separated media types uploads may have (type/subtype or type/*); empty accepts any but executables and installers, which are always refused", list(func(c *Config) *[]string { return &c.FileTypes })},
		{"uploads-per-hour", "PARLEY_UPLOADS_PER_HOUR", "60", "uploads one user may start per hour on one gateway node; more get 429 (0: no limit)", num(func(c *Config) *int { return &c.UploadsPerHour })},
		{"max-attachments", "PARLEY_MAX_ATTACHMENTS", "10", "most files one message carries", num(func(c *Config) *int { return &c.MaxAttachments })},
		{"upload-ttl", "PARLEY_UPLOAD_TTL", "24h", "uploads no message attached are deleted after this; a message may attach an upload up to half of it old", dur(func(c *Config) *time.Duration { return &c.UploadTTL })},
		{"upload-url-ttl", "PARLEY_UPLOAD_URL_TTL", "15m", "how long a presigned upload URL works", dur(func(c *Config) *time.Duration { return &c.UploadURLTTL })},
		{"download-url-ttl", "PARLEY_DOWNLOAD_URL_TTL", "5m", "how long a presigned download URL works", dur(func(c *Config) *time.Duration { return &c.DownloadURLTTL })},
		{"push-window", "PARLEY_PUSH_WINDOW", "5s", "a device gets at most one push notification per conversation per window; messages within it are counted into the next one", dur(func(c *Config) *time.Duration { return &c.PushWindow })},
		{"push-max-age", "PARLEY_PUSH_MAX_AGE", "1h", "messages older than this when the push projection reads them notify nobody (a rebuild, a long outage)", dur(func(c *Config) *time.Duration { return &c.PushMaxAge })},
		{"push-preview-runes", "PARLEY_PUSH_PREVIEW_RUNES", "100", "longest preview of a message's text in a push notification, in characters (0: none)", num(func(c *Config) *int { return &c.PushPreviewRunes })},
		{"vapid-public-key", "PARLEY_VAPID_PUBLIC_KEY", "", "Web Push application server public key (base64url P-256); empty with the private key: generated on first start of the embedded default under data-dir/push/vapid.json, Web Push off otherwise", str(func(c *Config) *string { return &c.VAPIDPublicKey })},
		{"vapid-private-key", "PARLEY_VAPID_PRIVATE_KEY", "", "Web Push application server private key (base64url); set with the public key", str(func(c *Config) *string { return &c.VAPIDPrivateKey })},
		{"vapid-subject", "PARLEY_VAPID_SUBJECT", "", "contact the push services may reach the operator at: an e-mail address (without mailto:) or an https URL; required for Web Push with an external Kafka cluster", str(func(c *Config) *string { return &c.VAPIDSubject })},
		{"webpush-hosts", "PARLEY_WEBPUSH_HOSTS", "fcm.googleapis.com,push.services.mozilla.com,notify.windows.com,push.apple.com", "comma-separated push services a Web Push subscription's endpoint may be at (each host and its subdomains; * any): the server sends requests there", list(func(c *Config) *[]string { return &c.WebPushHosts })},
		{"fcm-project", "PARLEY_FCM_PROJECT", "", "Firebase project id; set, devices may register with fcm", str(func(c *Config) *string { return &c.FCMProject })},
		{"fcm-credentials", "PARLEY_FCM_CREDENTIALS", "", "service account JSON file FCM requests are authorized with (empty: Google's application default credentials)", str(func(c *Config) *string { return &c.FCMCredentials })},
		{"fcm-endpoint", "PARLEY_FCM_ENDPOINT", "", "FCM HTTP v1 API base URL (empty: https://fcm.googleapis.com/v1)", str(func(c *Config) *string { return &c.FCMEndpoint })},
		{"apns-key-file", "PARLEY_APNS_KEY_FILE", "", "APNs provider token signing key (the .p8 file); set, devices may register with apns", str(func(c *Config) *string { return &c.APNsKeyFile })},
		{"apns-key-id", "PARLEY_APNS_KEY_ID", "", "key id of the APNs signing key; required with PARLEY_APNS_KEY_FILE", str(func(c *Config) *string { return &c.APNsKeyID })},
		{"apns-team-id", "PARLEY_APNS_TEAM_ID", "", "Apple developer team id; required with PARLEY_APNS_KEY_FILE", str(func(c *Config) *string { return &c.APNsTeamID })},
		{"apns-topic", "PARLEY_APNS_TOPIC", "", "the app's bundle id (apns-topic); required with PARLEY_APNS_KEY_FILE", str(func(c *Config) *string { return &c.APNsTopic })},
		{"apns-host", "PARLEY_APNS_HOST", "https://api.push.apple.com", "APNs server (https://api.sandbox.push.apple.com for development builds)", str(func(c *Config) *string { return &c.APNsHost })},
		{"presence-timeout", "PARLEY_PRESENCE_TIMEOUT", "30s", "a crashed node's users go offline within this", dur(func(c *Config) *time.Duration { return &c.PresenceTimeout })},
		{"presence-heartbeat", "PARLEY_PRESENCE_HEARTBEAT", "10s", "how long a user's presence may go without the node re-publishing it (each user on their own schedule); below the timeout", dur(func(c *Config) *time.Duration { return &c.PresenceHeartbeat })},
		{"routing", "PARLEY_ROUTING", RoutingAuto, "how events reach gateway nodes: targeted (a router sends each node only what its sockets and requests need), broadcast (every node reads every event), or auto: broadcast when every role runs in one process on the embedded broker (one node: no router hop), else targeted", str(func(c *Config) *string { return &c.Routing })},
		{"node-id", "PARLEY_NODE_ID", host, "this node's name in logs, metrics and presence; unique per running node (default: the host name)", str(func(c *Config) *string { return &c.NodeID })},
		{"log-level", "PARLEY_LOG_LEVEL", "info", "debug, info, warn or error", str(func(c *Config) *string { return &c.LogLevel })},
		{"log-format", "PARLEY_LOG_FORMAT", "text", "text or json", str(func(c *Config) *string { return &c.LogFormat })},
		{"shutdown-timeout", "PARLEY_SHUTDOWN_TIMEOUT", "15s", "how long a clean shutdown may take", dur(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
		{"pprof-addr", "PARLEY_PPROF_ADDR", "", "listen address of net/http/pprof (/debug/pprof/) on its own listener, for profiling; empty serves none. Keep it on loopback", str(func(c *Config) *string { return &c.PprofAddr })},
	}
}

// Load parses args (flags) over the environment over the defaults.
func Load(name string, args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	var c Config
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// A bad flag is reported once, in one line, by the caller; the flag list
	// is printed only when it was asked for (-h).
	fs.SetOutput(io.Discard)
	var errs []error
	for _, s := range Settings() {
		v := s.Default
		if e := getenv(s.Env); e != "" {
			v = e
		}
		if err := s.set(&c, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.Env, err))
		}
		fs.Func(s.Flag, fmt.Sprintf("%s (env %s, default %q)", s.Help, s.Env, s.Default), func(v string) error { return s.set(&c, v) })
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fs.PrintDefaults()
		}
		return c, err
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %v", fs.Args()))
	}
	if err := errors.Join(append(errs, c.Validate())...); err != nil {
		return c, err
	}
	return c, nil
}

// Routing modes (PARLEY_ROUTING).
const (
	// RoutingTargeted: the router role sends each gateway node only the
	// records its sockets and waiting requests need.
	RoutingTargeted = "targeted"
	// RoutingBroadcast: every gateway node reads every record.
	RoutingBroadcast = "broadcast"
	// RoutingAuto: broadcast for the one node of `parley run` on the
	// embedded broker, which the router would only slow down; targeted
	// otherwise (Config.ForRoles decides).
	RoutingAuto = "auto"
)

// ForRoles returns c with the routing mode the roles run under: auto is
// resolved to broadcast when every role runs in this process on the
// embedded broker — the only node there is, so a router's extra hop would
// serve nothing — and to targeted otherwise.
func (c Config) ForRoles(roles Roles) Config {
	if c.Routing == RoutingAuto {
		c.Routing = RoutingTargeted
		if roles == All && c.Embedded() {
			c.Routing = RoutingBroadcast
		}
	}
	return c
}

// Targeted reports whether c routes events to nodes (RoutingTargeted).
func (c Config) Targeted() bool { return c.Routing == RoutingTargeted }

// names resolves topic and group names under the deployment's prefix.
func (c Config) names() kafkalog.Names { return kafkalog.Names{Prefix: c.TopicPrefix} }

// Embedded reports whether c runs the embedded broker.
func (c Config) Embedded() bool { return len(c.KafkaBrokers) == 0 }

// EmbeddedBroker is the configuration of the embedded broker over the
// data dir, for every command that starts one.
func (c Config) EmbeddedBroker(log *slog.Logger) embeddedkafka.Config {
	return embeddedkafka.Config{Dir: filepath.Join(c.DataDir, "kafka"), Addr: c.KafkaListen, Logger: log, SyncWrites: c.KafkaSyncWrites}
}

// OIDC reports whether tokens come from OpenID providers
// (PARLEY_OIDC_ISSUER); then HS256 tokens, the dev secret's included,
// are refused.
func (c Config) OIDC() bool { return len(c.OIDCIssuers) > 0 }

// OIDCConfig is the gateway's OIDC verifier configuration of c.
func (c Config) OIDCConfig() gateway.OIDCConfig {
	leeway := c.JWTLeeway
	if leeway == 0 {
		leeway = gateway.NoLeeway
	}
	return gateway.OIDCConfig{Issuers: c.OIDCIssuers, Audience: c.OIDCAudience, UserClaim: c.OIDCUserClaim, Leeway: leeway}
}

// Secret returns the JWT secret in force.
func (c Config) Secret() []byte {
	if c.JWTSecret == "" && c.Embedded() {
		return []byte(DevSecret)
	}
	return []byte(c.JWTSecret)
}

// DevSecretInUse reports whether tokens are signed with the public
// DevSecret: the embedded default without PARLEY_JWT_SECRET or an
// identity provider.
func (c Config) DevSecretInUse() bool {
	return !c.OIDC() && c.JWTSecret == "" && c.Embedded()
}

// issuerOrigins are the origins (scheme://host:port) of the OIDC
// issuers, which the web client fetches discovery and tokens from.
func (c Config) issuerOrigins() []string {
	var out []string
	for _, iss := range c.OIDCIssuers {
		if u, err := url.Parse(iss); err == nil && u.Host != "" {
			out = append(out, u.Scheme+"://"+u.Host)
		}
	}
	return out
}

// loopback reports whether the listen address addr (host:port) can be
// reached from this machine only: localhost or a loopback IP. An empty host
// listens on every interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// validateOIDC reports the problems of the OIDC settings.
func (c Config) validateOIDC() []error {
	var errs []error
	if c.JWTSecret != "" {
		errs = append(errs, errors.New("PARLEY_JWT_SECRET and PARLEY_OIDC_ISSUER exclude each other: with an identity provider only its tokens are accepted"))
	}
	for _, iss := range c.OIDCIssuers {
		if u, err := url.Parse(iss); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			errs = append(errs, fmt.Errorf("PARLEY_OIDC_ISSUER %q is not an http(s) URL", iss))
		}
	}
	if c.OIDCAudience == "" {
		errs = append(errs, errors.New("PARLEY_OIDC_AUDIENCE is required with PARLEY_OIDC_ISSUER (the client id Parley is registered under)"))
	}
	if !slices.Contains(gateway.UserClaims, c.OIDCUserClaim) {
		errs = append(errs, fmt.Errorf("PARLEY_OIDC_USER_CLAIM %q must be one of %s", c.OIDCUserClaim, strings.Join(gateway.UserClaims, ", ")))
	}
	return errs
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	errs = append(errs, c.validatePush()...)
	if c.OIDC() {
		errs = append(errs, c.validateOIDC()...)
	}
	if c.JWTSecret == "" && !c.Embedded() && !c.OIDC() {
		errs = append(errs, errors.New("PARLEY_JWT_SECRET or PARLEY_OIDC_ISSUER is required with an external Kafka cluster"))
	}
	if c.JWTSecret == "" && c.Embedded() && !c.OIDC() {
		// Anyone can sign tokens with the public dev secret: nobody but this
		// machine may reach a server that accepts them.
		if !loopback(c.HTTPAddr) {
			errs = append(errs, fmt.Errorf("PARLEY_HTTP_ADDR %q is reachable from other machines while tokens are signed with the public dev secret: set PARLEY_JWT_SECRET (at least 32 bytes) or listen on 127.0.0.1", c.HTTPAddr))
		}
		if !loopback(c.KafkaListen) {
			errs = append(errs, fmt.Errorf("PARLEY_KAFKA_LISTEN %q is reachable from other machines while tokens are signed with the public dev secret: set PARLEY_JWT_SECRET (at least 32 bytes) or listen on 127.0.0.1", c.KafkaListen))
		}
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		errs = append(errs, errors.New("PARLEY_JWT_SECRET must be at least 32 bytes"))
	}
	if c.ContentKEK != "" {
		if _, err := c.KEK(); err != nil {
			errs = append(errs, err)
		}
	}
	if c.JWTLeeway < 0 || c.JWTLeeway > 5*time.Minute {
		errs = append(errs, errors.New("PARLEY_JWT_LEEWAY must be 0..5m"))
	}
	if err := c.names().Validate(); err != nil {
		errs = append(errs, fmt.Errorf("PARLEY_TOPIC_PREFIX: %w", err))
	}
	if _, err := ParseRoles(c.Roles); err != nil {
		errs = append(errs, fmt.Errorf("PARLEY_ROLES: %w", err))
	}
	if c.Partitions < 0 {
		errs = append(errs, errors.New("PARLEY_PARTITIONS must be auto or at least 1"))
	}
	if c.ReplicationFactor < 1 {
		errs = append(errs, errors.New("PARLEY_REPLICATION_FACTOR must be at least 1"))
	}
	if c.MinInsyncReplicas < 1 || c.MinInsyncReplicas > max(c.ReplicationFactor, 1) {
		errs = append(errs, fmt.Errorf("PARLEY_MIN_INSYNC_REPLICAS must be 1..PARLEY_REPLICATION_FACTOR (%d), got %d", c.ReplicationFactor, c.MinInsyncReplicas))
	}
	if c.MaxBodyBytes < 1 || c.MaxBodyBytes > 1<<20 {
		errs = append(errs, errors.New("PARLEY_MAX_MESSAGE_BYTES must be 1..1048576"))
	}
	if c.MaxMembers < 2 || c.MaxMembers > 1_000_000 {
		errs = append(errs, errors.New("PARLEY_MAX_MEMBERS must be 2..1000000"))
	}
	if c.MaxTitleRunes < 1 || c.MaxTitleRunes > 1000 {
		errs = append(errs, errors.New("PARLEY_MAX_TITLE_CHARS must be 1..1000"))
	}
	if c.MaxReactions < 1 || c.MaxReactions > 1000 {
		errs = append(errs, errors.New("PARLEY_MAX_REACTIONS must be 1..1000"))
	}
	if c.EditWindow <= 0 {
		errs = append(errs, errors.New("PARLEY_EDIT_WINDOW must be positive"))
	}
	if c.ConversationCache < 1 {
		errs = append(errs, errors.New("PARLEY_CONVERSATION_CACHE must be at least 1"))
	}
	if c.PresenceCache < 1 {
		errs = append(errs, errors.New("PARLEY_PRESENCE_CACHE must be at least 1"))
	}
	if c.BackfillLimit < 1 || c.SendQueue < 1 {
		errs = append(errs, errors.New("PARLEY_BACKFILL_LIMIT and PARLEY_SEND_QUEUE must be at least 1"))
	}
	if c.PresenceHeartbeat <= 0 || c.PresenceTimeout <= c.PresenceHeartbeat {
		errs = append(errs, errors.New("PARLEY_PRESENCE_HEARTBEAT must be positive and below PARLEY_PRESENCE_TIMEOUT"))
	}
	if c.NodeID == "" {
		errs = append(errs, errors.New("PARLEY_NODE_ID must not be empty"))
	}
	switch c.Routing {
	case RoutingTargeted, RoutingAuto:
		if c.NodeID != "" && !schemas.ValidNodeID(c.NodeID) {
			errs = append(errs, fmt.Errorf("PARLEY_NODE_ID %q names the node's delivery topic under targeted routing: use 1-200 characters of [A-Za-z0-9._-]", c.NodeID))
		}
	case RoutingBroadcast:
	default:
		errs = append(errs, fmt.Errorf("PARLEY_ROUTING must be %s, %s or %s, got %q", RoutingTargeted, RoutingBroadcast, RoutingAuto, c.Routing))
	}
	if c.CommandTimeout <= 0 || c.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("timeouts must be positive"))
	}
	if c.CommandLinger < 0 {
		errs = append(errs, errors.New("PARLEY_COMMAND_LINGER must not be negative"))
	}
	errs = append(errs, c.validateLimits()...)
	errs = append(errs, c.validateFiles()...)
	if _, err := c.logLevel(); err != nil {
		errs = append(errs, err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, fmt.Errorf("PARLEY_LOG_FORMAT must be text or json, got %q", c.LogFormat))
	}
	return errors.Join(errs...)
}

// validateLimits reports the problems of the edge's limits.
func (c Config) validateLimits() []error {
	var errs []error
	if c.MaxInFlight < 1 || c.MaxInFlight > 1<<16 {
		errs = append(errs, errors.New("PARLEY_MAX_INFLIGHT must be 1..65536"))
	}
	if c.MaxAwaiting < 1 || c.MaxAwaiting > 1<<20 {
		errs = append(errs, errors.New("PARLEY_MAX_AWAITING must be 1..1048576"))
	}
	if c.MaxSocketsPerUser < 0 {
		errs = append(errs, errors.New("PARLEY_MAX_SOCKETS_PER_USER must be 0 (no limit) or more"))
	}
	if c.DiskReserve < 0 {
		errs = append(errs, errors.New("PARLEY_DISK_RESERVE must be 0 (no reserve) or more bytes"))
	}
	for _, r := range []struct {
		name  string
		rate  float64
		burst int
	}{
		{"USER_COMMAND", c.UserCommandRate, c.UserCommandBurst},
		{"USER_REQUEST", c.UserRequestRate, c.UserRequestBurst},
		{"IP_CONNECT", c.IPConnectRate, c.IPConnectBurst},
		{"IP_AUTH_FAILURE", c.IPAuthFailureRate, c.IPAuthFailureBurst},
	} {
		if r.rate < 0 {
			errs = append(errs, fmt.Errorf("PARLEY_%s_RATE must be 0 (no limit) or more", r.name))
		}
		if r.rate > 0 && r.burst < 1 {
			errs = append(errs, fmt.Errorf("PARLEY_%s_BURST must be at least 1", r.name))
		}
	}
	if _, err := prefixes("PARLEY_TRUSTED_PROXIES", c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if _, err := prefixes("PARLEY_RATE_LIMIT_EXEMPT", c.RateLimitExempt); err != nil {
		errs = append(errs, err)
	}
	if c.WSAuthTimeout <= 0 || c.SSEHeartbeat <= 0 || c.HTTPReadHeaderTimeout <= 0 || c.HTTPIdleTimeout <= 0 {
		errs = append(errs, errors.New("PARLEY_WS_AUTH_TIMEOUT, PARLEY_SSE_HEARTBEAT, PARLEY_HTTP_READ_HEADER_TIMEOUT and PARLEY_HTTP_IDLE_TIMEOUT must be positive"))
	}
	return errs
}

// prefixes parses the setting env's values: addresses and CIDR
// prefixes.
func prefixes(env string, values []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	var errs []error
	for _, v := range values {
		if p, err := netip.ParsePrefix(v); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %q is neither an address nor a CIDR prefix", env, v))
			continue
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, errors.Join(errs...)
}

// rate is a gateway rate limit of perSecond and burst; 0 is no limit.
func rate(perSecond float64, burst int) gateway.Rate {
	if perSecond == 0 {
		return gateway.Rate{PerSecond: -1}
	}
	return gateway.Rate{PerSecond: perSecond, Burst: burst}
}

// gatewayLimits sets cfg's limits from c's.
func (c Config) gatewayLimits(cfg *gateway.Config) {
	cfg.MaxInFlight = c.MaxInFlight
	cfg.MaxAwaiting = c.MaxAwaiting
	cfg.AuthTimeout = c.WSAuthTimeout
	cfg.SSEHeartbeat = c.SSEHeartbeat
	cfg.MaxSocketsPerUser = c.MaxSocketsPerUser
	if c.MaxSocketsPerUser == 0 {
		cfg.MaxSocketsPerUser = -1
	}
	cfg.UserCommands = rate(c.UserCommandRate, c.UserCommandBurst)
	cfg.UserRequests = rate(c.UserRequestRate, c.UserRequestBurst)
	cfg.IPConnects = rate(c.IPConnectRate, c.IPConnectBurst)
	cfg.IPAuthFailures = rate(c.IPAuthFailureRate, c.IPAuthFailureBurst)
	// Validate has checked them.
	cfg.TrustedProxies, _ = prefixes("PARLEY_TRUSTED_PROXIES", c.TrustedProxies)
	cfg.Exempt, _ = prefixes("PARLEY_RATE_LIMIT_EXEMPT", c.RateLimitExempt)
}

func (c Config) logLevel() (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(c.LogLevel)); err != nil {
		return l, fmt.Errorf("PARLEY_LOG_LEVEL: %w", err)
	}
	return l, nil
}

// Logger returns the logger c asks for, writing to w.
func (c Config) Logger(w io.Writer) *slog.Logger {
	level, _ := c.logLevel()
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if c.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(h).With("node", c.NodeID)
}

// limits are the conversation limits the decider decides with and the
// gateway pre-checks with.
func (c Config) limits() conversation.Limits {
	return conversation.Limits{
		MaxBodyBytes: c.MaxBodyBytes, MaxMembers: c.MaxMembers, MaxTitleRunes: c.MaxTitleRunes,
		MaxReactions: c.MaxReactions, EditWindow: c.EditWindow, MaxAttachments: c.MaxAttachments,
	}
}

// KEK returns the key-encryption key of PARLEY_CONTENT_KEK, or nil when
// content sealing is off.
func (c Config) KEK() ([]byte, error) {
	if c.ContentKEK == "" {
		return nil, nil
	}
	k, err := base64.StdEncoding.DecodeString(c.ContentKEK)
	if err != nil || len(k) != contentkeys.KEKSize {
		return nil, fmt.Errorf("PARLEY_CONTENT_KEK must be the base64 of %d bytes (e.g. openssl rand -base64 32)", contentkeys.KEKSize)
	}
	return k, nil
}
