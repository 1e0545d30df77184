// The gateway Server: its configuration, the ports it uses, its routes,
// and appending a command and waiting for the decider's answer.

package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/parley-chat/parley/internal/conversation"
	"github.com/parley-chat/parley/internal/files"
	"github.com/parley-chat/parley/internal/telemetry"
	"github.com/parley-chat/parley/producers"
	"github.com/parley-chat/parley/projections/delivery"
	"github.com/parley-chat/parley/projections/history"
	"github.com/parley-chat/parley/schemas"
)

// Appender appends commands to the log (producers.CommandWriter).
type Appender interface {
	// Enqueue queues cmd for the log and returns once its place in its
	// partition is fixed: a command enqueued later for the same
	// conversation is written after it. written then gets the write's
	// outcome, once. An error wrapping producers.ErrOverloaded means too
	// many commands already wait for the log.
	Enqueue(ctx context.Context, typ, conversation string, cmd any, traceParent string) (written <-chan error, err error)
}

// Hub is the delivery projection of this node (a delivery.Hub, whose
// sessions the wiring hands out as Sessions): it answers the commands
// this node appends, holds the sockets' sessions, and knows the
// conversations the gateway authorises with.
type Hub interface {
	Conversations
	// Await registers interest in the outcome of user's command
	// commandID on conversation before it is appended
	// (delivery.Hub.Await); the same command awaited twice at once is
	// answered twice, in order.
	Await(user, conversation, commandID string) (outcome <-chan delivery.Outcome, cancel func())
	// NewSession registers a session of user for one socket; Close
	// unregisters it.
	NewSession(user string) Session
}

// Conversations looks up a conversation's summary and members: what the
// gateway authorises a user's requests with. It returns an error
// wrapping history.ErrNotFound for a conversation that does not exist.
type Conversations interface {
	Conversation(ctx context.Context, id string) (history.Conversation, error)
}

// Session is one socket's delivery state (delivery.Session) as the
// WebSocket handler uses it: its lifecycle, and what the client asks of
// it.
type Session interface {
	SessionLifecycle
	// Resume asks for, per conversation, the events after the seq given,
	// then live ones, answered with a "resumed" frame of request id.
	Resume(id string, last map[string]uint64)
	// Signal queues a frame outside every conversation's sequence
	// (presence) without blocking.
	Signal(frame []byte)
}

// SessionLifecycle is how a socket's session runs and ends.
type SessionLifecycle interface {
	// Start has the session write its frames to sink under ctx from now
	// on, on a goroutine of its own that runs only while frames wait.
	// ended, if not nil, is told once why the session ended
	// (delivery.ErrSlowConsumer for a slow client, a write's error, or
	// context.Canceled after Close); it must not block.
	Start(ctx context.Context, sink delivery.Sink, ended func(error))
	// Done is closed when the session has ended; Err then says why.
	Done() <-chan struct{}
	Err() error
	// Close ends the session; it is idempotent.
	Close()
	// Wait returns once the session's writer has stopped; call it after
	// Close.
	Wait()
}

// DiskSpace says whether the file system the node's appends land on is
// below its reserve (a *diskspace.Guard).
type DiskSpace interface {
	Low() bool
}

// ReadyCheck reports whether a dependency is ready; nil means ready.
type ReadyCheck func(ctx context.Context) error

// Config configures the gateway.
type Config struct {
	// Auth verifies bearer tokens on both transports: an *Authenticator
	// (HS256, the embedded default's dev secret) or an *OIDCVerifier.
	Auth Verifier
	// Commands appends to chat.commands.
	Commands Appender
	// Disk, if set, is the free space of the file system the node's
	// appends land on (the embedded broker's and stores' data directory):
	// while it is Low the node refuses, at once and appending nothing,
	// every command, read marker and upload. Nil: the log is elsewhere.
	Disk    DiskSpace
	Hub     Hub
	History history.Reader
	// Signals appends typing indicators; nil disables them.
	Signals Signaler
	// Presence is this node's presence projection; nil disables presence.
	Presence PresenceTracker
	// Search serves GET /v1/search; nil answers 503.
	Search Searcher
	// Receipts records read markers; nil answers 503 to them.
	Receipts Receipts
	// Push records push registrations and notification settings.
	Push PushConfig
	// Keys is the key directory of end-to-end encryption; nil answers
	// 503 to its routes.
	Keys KeyDirectory
	// Erasure erases users (POST /v1/users/{id}/erase); nil answers 503:
	// content is not sealed, so there is no key to destroy.
	Erasure Eraser
	// Admins are the user ids that may erase users (PARLEY_ADMIN_USERS).
	Admins  []string
	Metrics *telemetry.Metrics
	Logger  *slog.Logger
	// Ready are the checks behind /readyz, by name.
	Ready map[string]ReadyCheck
	// Limits are the conversation limits, the decider's, which requests
	// are pre-checked against. Defaults: conversation.Limits'.
	Limits conversation.Limits
	// CommandTimeout bounds waiting for the decider's answer. Default: 10s.
	CommandTimeout time.Duration
	// AuthTimeout is how long a socket may take to send its auth frame.
	// Default: 10s.
	AuthTimeout time.Duration
	// WriteTimeout bounds each socket write. Default: 10s.
	WriteTimeout time.Duration
	// SSEHeartbeat is how often an idle Server-Sent Events stream gets a
	// comment, so that proxies and load balancers do not close it.
	// Default: 15s.
	SSEHeartbeat time.Duration
	// SSERetry is the reconnection delay an SSE stream asks its client
	// for (the retry field). Default: 2s.
	SSERetry time.Duration
	// SSEMaxCursor is the most conversations an SSE event id (the
	// cursor a client resumes from with Last-Event-ID) holds; when more
	// have delivered events, the one that moved least recently is
	// dropped from it. 128 keeps the id under ~6 KiB, well inside proxy
	// header limits. Default: 128.
	SSEMaxCursor int
	// MaxInFlight is the most unanswered sends per socket; more make the
	// server stop reading that socket until answers come. Default: 256.
	MaxInFlight int
	// MaxAwaiting is the most commands the gateway has taken and not yet
	// answered, over every socket and HTTP request: queued for the log,
	// or appended and waiting for the decider. Beyond it a command is
	// refused at once with overloaded, before anything is appended, so
	// that when the decider falls behind clients hear it now rather than
	// when the command timeout runs out. Default: DefaultMaxAwaiting.
	MaxAwaiting int
	// ReadBufferSize and WriteBufferSize are each socket's read and write
	// buffers, in bytes, kept for the socket's life: a frame larger than
	// the write buffer takes two writes (see socketBuffers). Defaults: 512
	// and 1024, which hold a client's frame and an event frame with a
	// body of a few hundred bytes.
	ReadBufferSize, WriteBufferSize int

	// Rate limits (token buckets; see README "Limits"). A Rate of zero
	// takes the default; a negative PerSecond turns the limit off.
	//
	// UserCommands is each user's commands, over both transports: the
	// WebSocket frames that append (send, edit, delete, react, unreact,
	// read, presence_set) and the HTTP requests that write (POST, PUT,
	// PATCH, DELETE).
	// Default: 100/s, burst 200.
	UserCommands Rate
	// UserRequests is each user's requests that read: every
	// authenticated HTTP request, writes included, and the WebSocket
	// frames that read the stores (resume, presence_watch). Default:
	// 200/s, burst 400.
	UserRequests Rate
	// IPConnects is each client address's WebSocket upgrades. Default:
	// 1000/s, burst 2000.
	IPConnects Rate
	// IPAuthFailures is each client address's failed authentications,
	// over both transports; while its bucket is empty the address's
	// unauthenticated requests and upgrades are refused before their
	// token is looked at. Default: 10/s, burst 100.
	IPAuthFailures Rate
	// MaxSocketsPerUser is the most sockets one user may have open on
	// this node; a negative value means no limit. Default: 100.
	MaxSocketsPerUser int
	// TrustedProxies are the addresses of the load balancers and proxies
	// whose X-Forwarded-For is believed when finding a request's client
	// address; from any other peer the peer's address is the client's.
	// Default: none.
	TrustedProxies []netip.Prefix
	// Exempt are the client addresses the per-address limits
	// (IPConnects, IPAuthFailures) do not apply to; the per-user limits
	// still do. Default: none.
	Exempt []netip.Prefix
	// MaxBucketKeys is the most users or addresses each rate limit keeps
	// a bucket for (see bucketSet). Default: 100,000.
	MaxBucketKeys int
	// Now is the rate limits' clock. Default: time.Now.
	Now func() time.Time

	// Files is the file store uploads and downloads are presigned
	// against; nil answers 503 to them and to messages with attachments.
	Files FileStore
	// FilePolicy is what may be uploaded. Defaults: files.Policy's
	// (100 MiB, any type but executables).
	FilePolicy files.Policy
	// UserUploads is each user's uploads. Default: 60 an hour, burst 60.
	UserUploads Rate
	// UploadURLTTL is how long a presigned upload URL works.
	// Default: 15 minutes.
	UploadURLTTL time.Duration
	// DownloadURLTTL is how long a presigned download URL works.
	// Default: 5 minutes.
	DownloadURLTTL time.Duration
	// UploadMaxAge is the oldest upload a message may attach; keep it
	// well below the sweep's TTL of unattached uploads, so that an upload
	// is never swept while a message attaches it. Default: 12 hours.
	UploadMaxAge time.Duration
	// Client is the web client (web.Handler): served at /, at
	// /auth/callback (where an identity provider sends the browser back)
	// and under /static/. Nil serves none.
	Client http.Handler
	// SignIn says how browsers sign in: GET /auth/config and
	// POST /auth/dev-token.
	SignIn SignIn
}

func (c Config) withDefaults() Config {
	c.Limits = c.Limits.WithDefaults()
	if c.CommandTimeout == 0 {
		c.CommandTimeout = 10 * time.Second
	}
	if c.AuthTimeout == 0 {
		c.AuthTimeout = 10 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.SSEHeartbeat <= 0 {
		c.SSEHeartbeat = 15 * time.Second
	}
	if c.SSERetry <= 0 {
		c.SSERetry = 2 * time.Second
	}
	if c.SSEMaxCursor <= 0 {
		c.SSEMaxCursor = 128
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 256
	}
	if c.MaxAwaiting <= 0 {
		c.MaxAwaiting = DefaultMaxAwaiting
	}
	if c.ReadBufferSize == 0 {
		c.ReadBufferSize = 512
	}
	if c.WriteBufferSize == 0 {
		c.WriteBufferSize = 1024
	}
	c.UserCommands = c.UserCommands.orDefault(Rate{PerSecond: 100, Burst: 200})
	c.UserRequests = c.UserRequests.orDefault(Rate{PerSecond: 200, Burst: 400})
	c.IPConnects = c.IPConnects.orDefault(Rate{PerSecond: 1000, Burst: 2000})
	c.IPAuthFailures = c.IPAuthFailures.orDefault(Rate{PerSecond: 10, Burst: 100})
	if c.MaxSocketsPerUser == 0 {
		c.MaxSocketsPerUser = 100
	}
	if c.MaxBucketKeys == 0 {
		c.MaxBucketKeys = defaultMaxBucketKeys
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.FilePolicy = c.FilePolicy.WithDefaults()
	c.UserUploads = c.UserUploads.orDefault(Rate{PerSecond: 60.0 / 3600, Burst: 60})
	if c.UploadURLTTL <= 0 {
		c.UploadURLTTL = 15 * time.Minute
	}
	if c.DownloadURLTTL <= 0 {
		c.DownloadURLTTL = 5 * time.Minute
	}
	if c.UploadMaxAge <= 0 {
		c.UploadMaxAge = 12 * time.Hour
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Metrics == nil {
		c.Metrics = telemetry.New()
	}
	return c
}

// Server serves the HTTP API and the WebSocket endpoint.
type Server struct {
	cfg Config
	log *slog.Logger
	mux http.Handler

	// stopping is cancelled by Shutdown (stop): sockets close with
	// going-away. A context, so that each socket registers a function
	// with it (context.AfterFunc) rather than park a goroutine on it.
	stopping context.Context
	stop     context.CancelFunc
	sockets  sync.WaitGroup
	typing   *limiter

	// The rate limits' buckets (see Config).
	userCommands, userRequests, ipConnects, ipAuthFailures *bucketSet
	userUploads                                            *bucketSet
	// open counts each user's open sockets (MaxSocketsPerUser).
	open userSockets
	// awaiting holds a token for each command taken and not yet
	// answered (MaxAwaiting).
	awaiting chan struct{}
	// frameBuffers are the buffers the sockets read frames into.
	frameBuffers frameBuffers
}

// New returns a Server.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	var errs []error
	if cfg.Auth == nil {
		errs = append(errs, errors.New("gateway: no authenticator"))
	}
	if cfg.Commands == nil || cfg.Hub == nil || cfg.History == nil {
		errs = append(errs, errors.New("gateway: commands, hub and history are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger.With("component", "gateway"), typing: newLimiter(typingInterval),
		userCommands:   newBucketSet(cfg.UserCommands, cfg.MaxBucketKeys, cfg.Now),
		userRequests:   newBucketSet(cfg.UserRequests, cfg.MaxBucketKeys, cfg.Now),
		ipConnects:     newBucketSet(cfg.IPConnects, cfg.MaxBucketKeys, cfg.Now),
		ipAuthFailures: newBucketSet(cfg.IPAuthFailures, cfg.MaxBucketKeys, cfg.Now),
		userUploads:    newBucketSet(cfg.UserUploads, cfg.MaxBucketKeys, cfg.Now),
		open:           userSockets{max: cfg.MaxSocketsPerUser, n: make(map[string]int)},
		awaiting:       make(chan struct{}, cfg.MaxAwaiting),
	}
	s.stopping, s.stop = context.WithCancel(context.Background())
	s.mux = s.routes()
	return s, nil
}

// OpsRoutes mounts /healthz, /readyz and /metrics on r: every role serves
// them, the gateway and the others alike.
func OpsRoutes(r chi.Router, m *telemetry.Metrics, ready map[string]ReadyCheck) {
	r.Get("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	r.Get("/readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		var problems []error
		for name, check := range ready {
			if err := check(ctx); err != nil {
				problems = append(problems, fmt.Errorf("%s: %w", name, err))
			}
		}
		if err := errors.Join(problems...); err != nil {
			writeProblem(w, newError(codeUnavailable, err.Error()))
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	r.Handle("/metrics", m.Handler())
}

func (s *Server) routes() http.Handler {
	r := chi.NewRouter()
	r.Use(s.recoverer)
	OpsRoutes(r, s.cfg.Metrics, s.cfg.Ready)
	r.NotFound(func(w http.ResponseWriter, _ *http.Request) {
		writeProblem(w, newError(codeNotFound, "no such endpoint"))
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, _ *http.Request) {
		e := newError(codeBadRequest, "method not allowed")
		e.Status = http.StatusMethodNotAllowed
		writeProblem(w, e)
	})
	if c := s.cfg.Client; c != nil {
		r.Get("/", c.ServeHTTP)
		r.Get("/auth/callback", c.ServeHTTP)
		r.Get("/static/*", c.ServeHTTP)
	}
	// The socket and the event stream are connections, not requests:
	// parley_ws_connections and parley_sse_streams count them.
	r.Get("/v1/ws", s.serveWS)
	r.Get("/v1/events", s.serveEvents)
	r.Group(func(r chi.Router) {
		r.Use(s.instrument)
		r.Get("/auth/config", s.serveSignInConfig)
		r.Post("/auth/dev-token", s.serveDevToken)
		r.Group(func(r chi.Router) {
			r.Use(s.authenticate)
			r.Post("/v1/conversations", s.createConversation)
			r.Get("/v1/conversations", s.listConversations)
			r.Get("/v1/conversations/{id}", s.getConversation)
			r.Get("/v1/conversations/{id}/history", s.getHistory)
			r.Post("/v1/conversations/{id}/messages", s.postMessage)
			r.Post("/v1/conversations/{id}/leave", s.leaveConversation)
			r.Post("/v1/conversations/{id}/mls/commits", s.postMLSCommit)
			r.Post("/v1/conversations/{id}/mls/proposals", s.postMLSProposal)
			r.Post("/v1/conversations/{id}/mls/messages", s.postMLSMessage)
			r.Patch("/v1/conversations/{id}", s.updateConversation)
			r.Post("/v1/conversations/{id}/members", s.addMembers)
			r.Delete("/v1/conversations/{id}/members/{user}", s.removeMember)
			r.Put("/v1/conversations/{id}/members/{user}/role", s.setRole)
			r.Patch("/v1/conversations/{id}/messages/{seq}", s.editMessage)
			r.Delete("/v1/conversations/{id}/messages/{seq}", s.deleteMessage)
			r.Get("/v1/conversations/{id}/messages/{seq}/thread", s.getThread)
			r.Post("/v1/conversations/{id}/uploads", s.postUpload)
			r.Get("/v1/conversations/{id}/messages/{seq}/attachments/{n}", s.getAttachment)
			r.Get("/v1/conversations/{id}/messages/{seq}/attachments/{n}/thumbnail", s.getThumbnail)
			r.Put("/v1/conversations/{id}/messages/{seq}/reactions/{emoji}", s.react(true))
			r.Delete("/v1/conversations/{id}/messages/{seq}/reactions/{emoji}", s.react(false))
			r.Post("/v1/conversations/{id}/read", s.markRead)
			r.Get("/v1/conversations/{id}/receipts", s.getReceipts)
			r.Put("/v1/blocks/{user}", s.block(true))
			r.Delete("/v1/blocks/{user}", s.block(false))
			r.Get("/v1/presence", s.getPresence)
			r.Get("/v1/push/config", s.getPushConfig)
			r.Put("/v1/devices/{device_id}/push", s.putDevicePush)
			r.Delete("/v1/devices/{device_id}/push", s.deleteDevicePush)
			r.Put("/v1/conversations/{id}/notifications", s.putConversationNotifications)
			r.Put("/v1/notifications", s.putNotifications)
			r.Post("/v1/devices/{device}/key-packages", s.publishKeyPackages)
			r.Get("/v1/devices/{device}/key-packages", s.keyPackageStatus)
			r.Delete("/v1/devices/{device}", s.removeDevice)
			r.Get("/v1/users/{user}/devices", s.listDevices)
			r.Get("/v1/users/{user}/key-packages", s.claimKeyPackages)
			r.Get("/v1/search", s.searchHandler(s.cfg.Search))
			r.Post("/v1/users/{id}/erase", s.eraseUser)
		})
	})
	return r
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// Shutdown closes every socket with going-away and waits for their
// handlers, or for ctx. net/http's Shutdown does not wait for hijacked
// connections, so call this as well.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stop()
	done := make(chan struct{})
	go func() { s.sockets.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("closing sockets: %w", ctx.Err())
	}
}

// member returns conversation id if user may use it, or the error to
// answer with.
func (s *Server) member(ctx context.Context, user, id string) (history.Conversation, *apiError) {
	if !schemas.ValidConversationID(id) {
		return history.Conversation{}, newError(codeInvalidRequest, "malformed conversation id")
	}
	c, err := s.cfg.Hub.Conversation(ctx, id)
	switch {
	case errors.Is(err, history.ErrNotFound):
		return c, refused(conversation.NotFound())
	case err != nil:
		s.log.Error("reading conversation", "conversation_id", id, "err", err)
		return c, newError(codeUnavailable, "conversation store unavailable")
	}
	// Not telling a non-member whether the conversation exists would hide
	// nothing: direct ids are derivable. Say why plainly.
	if r := c.Member(user); r != nil {
		return c, refused(r)
	}
	return c, nil
}

// DefaultMaxAwaiting is the default of Config.MaxAwaiting: as many as
// producers.DefaultMaxPending, the commands a CommandWriter lets wait for
// the broker, so that a gateway refuses for either reason at the same
// depth — a few seconds of what this kind of machine sustains.
const DefaultMaxAwaiting = producers.DefaultMaxPending

// command appends cmd and waits for the decider's answer.
func (s *Server) command(ctx context.Context, user, commandID, typ, conversation string, cmd any, traceParent string) (delivery.Outcome, *apiError) {
	if e := s.diskLow(); e != nil {
		return delivery.Outcome{}, e
	}
	select {
	case s.awaiting <- struct{}{}:
		s.cfg.Metrics.AwaitingCommands.Inc()
		defer func() {
			s.cfg.Metrics.AwaitingCommands.Dec()
			<-s.awaiting
		}()
	default:
		// As many commands wait for their answer as the gateway takes:
		// the log or the decider is not keeping up.
		return delivery.Outcome{}, s.reject("gateway", overloaded())
	}
	outcome, cancel := s.cfg.Hub.Await(user, conversation, commandID)
	defer cancel()
	ctx, stop := context.WithTimeout(ctx, s.cfg.CommandTimeout)
	defer stop()
	written, err := s.cfg.Commands.Enqueue(ctx, typ, conversation, cmd, traceParent)
	// The command has its place in its partition's order (or none): the
	// socket's lane may enqueue its next command to the conversation now,
	// without waiting for the broker (see lanes).
	appended(ctx)
	switch {
	case errors.Is(err, producers.ErrOverloaded):
		s.log.Warn("refusing a command: the log is saturated", "type", typ, "conversation_id", conversation)
		return delivery.Outcome{}, s.reject("gateway", overloaded())
	case err != nil:
		s.log.Error("appending command", "type", typ, "conversation_id", conversation, "err", err)
		return delivery.Outcome{}, s.reject("gateway", notAppended())
	}
	for {
		select {
		case err := <-written:
			if err != nil {
				s.log.Error("appending command", "type", typ, "conversation_id", conversation, "err", err)
				return delivery.Outcome{}, s.reject("gateway", notAppended())
			}
			written = nil // written: now the answer
		case o := <-outcome:
			if o.Code != "" {
				s.cfg.Metrics.Rejections.WithLabelValues("decider", o.Code).Inc()
				return o, newError(o.Code, o.Reason)
			}
			return o, nil
		case <-ctx.Done():
			return delivery.Outcome{}, s.reject("gateway", newError(codeTimeout, "no answer in time; retry with the same command id"))
		}
	}
}

// notAppended is the answer to a command the log did not take: the
// broker refused it or did not answer.
func notAppended() *apiError {
	return newError(codeUnavailable, "could not append the command; retry with the same command id")
}

// diskLow refuses what would append while the node's disk is below its
// reserve (Config.Disk); nil when there is room.
func (s *Server) diskLow() *apiError {
	if s.cfg.Disk == nil || !s.cfg.Disk.Low() {
		return nil
	}
	return s.reject("gateway", lowOnDisk())
}

func (s *Server) reject(where string, e *apiError) *apiError {
	s.cfg.Metrics.Rejections.WithLabelValues(where, e.Code).Inc()
	return e
}

// recoverer turns a panic in a handler into a logged 500 problem instead
// of a dropped connection.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("handler panicked", "path", r.URL.Path, "panic", fmt.Sprint(v))
				writeProblem(w, newError(codeInternal, "internal error"))
			}
		}()
		next.ServeHTTP(w, r)
	})
}
