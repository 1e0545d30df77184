// The load generator's configuration, its defaults and validation.

package loadgen

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/parley-chat/parley/internal/app"
	"github.com/parley-chat/parley/schemas"
)

// Shapes of the conversations a run creates.
const (
	// ShapeDirect pairs users: user 2k and 2k+1 share a direct
	// conversation, so every message has one recipient user.
	ShapeDirect = "direct"
	// ShapeGroup puts Groups × GroupSize users into Groups groups.
	ShapeGroup = "group"
)

// Ways a socket authenticates.
const (
	// AuthHeader sends "Authorization: Bearer" on the upgrade request.
	AuthHeader = "header"
	// AuthFrame sends an auth frame first, as browsers must.
	AuthFrame = "frame"
)

// MaxGroupSize is the largest group the gateway creates (the creator
// plus at most 9,999 members).
const MaxGroupSize = 10000

// Config configures a run. The zero value of each field means its
// default.
type Config struct {
	// Target is the base URL of the gateway. It must resolve to loopback
	// addresses unless AllowRemote names its host. Default:
	// http://127.0.0.1:8080.
	Target string
	// AllowRemote is a host name or address the run may target although
	// it is not loopback; it must equal Target's host exactly.
	AllowRemote string

	// JWTSecret signs the users' HS256 tokens. Default: app.DevSecret.
	JWTSecret string
	// JWTIssuer is the tokens' iss. Default: parley.
	JWTIssuer string
	// JWTAudience is the tokens' aud. Default: parley.
	JWTAudience string
	// Auth is how sockets authenticate: AuthHeader or AuthFrame.
	// Default: AuthHeader. Centrifugo sockets always send the token in
	// their connect command.
	Auth string
	// Protocol is the server's: ProtocolParley or ProtocolCentrifugo (to
	// compare the two under the same load). Default: ProtocolParley.
	Protocol string

	// Shape is ShapeDirect or ShapeGroup. Default: ShapeDirect.
	Shape string
	// Sockets is how many WebSocket connections to open; socket i
	// belongs to user i mod Users. Default: 100 for direct, Users for
	// group.
	Sockets int
	// Users is how many users there are (direct only; even). Default:
	// Sockets.
	Users int
	// GroupSize is the members per group, creator included (group only,
	// at most MaxGroupSize). Default: 10.
	GroupSize int
	// Groups is how many groups (group only). Default: 1.
	Groups int
	// UserPrefix starts every user id. Default: "lg-<run id>-", fresh
	// users on every run.
	UserPrefix string

	// Rate is the total send rate in messages per second over all
	// sockets; 0 holds idle sockets for Duration.
	Rate float64
	// StepRates, when set, replaces Rate: each rate runs for Duration
	// (then Drain) in turn, stopping after the first step that fails
	// (errors, losses, or delivery p99 above MaxP99).
	StepRates []float64
	// Duration of sending (or of idling) per phase. Default: 10s.
	Duration time.Duration
	// Drain is how long a phase waits after sending for outstanding acks
	// and deliveries. Default: 5s.
	Drain time.Duration
	// MaxP99 is the delivery p99 above which a step fails. Default: 1s.
	MaxP99 time.Duration
	// BodyBytes is the size of each message body. Default: 64; at least
	// 40 (the body carries the send time).
	BodyBytes int

	// SourceAddrs are local addresses to dial from, round-robin, to get
	// past the ~28k ephemeral ports of one source address. They must be
	// loopback when the target is. Default: chosen by the kernel.
	SourceAddrs []netip.Addr
	// DialConcurrency bounds simultaneous WebSocket handshakes.
	// Default: 64.
	DialConcurrency int
	// SetupConcurrency bounds simultaneous conversation creations.
	// Default: 16.
	SetupConcurrency int
	// SetupTimeout bounds creating conversations and connecting.
	// Default: 5m.
	SetupTimeout time.Duration

	// PID, when set, is a local server process whose /proc VmRSS and
	// utime+stime are sampled besides /metrics.
	PID int
	// Logger receives progress. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Target == "" {
		c.Target = "http://127.0.0.1:8080"
	}
	if c.JWTSecret == "" {
		c.JWTSecret = app.DevSecret
	}
	if c.JWTIssuer == "" {
		c.JWTIssuer = "parley"
	}
	if c.JWTAudience == "" {
		c.JWTAudience = "parley"
	}
	if c.Auth == "" {
		c.Auth = AuthHeader
	}
	if c.Protocol == "" {
		c.Protocol = ProtocolParley
	}
	if c.Shape == "" {
		c.Shape = ShapeDirect
	}
	switch c.Shape {
	case ShapeDirect:
		if c.Sockets == 0 {
			c.Sockets = 100
		}
		if c.Users == 0 {
			c.Users = c.Sockets
		}
	case ShapeGroup:
		if c.GroupSize == 0 {
			c.GroupSize = 10
		}
		if c.Groups == 0 {
			c.Groups = 1
		}
		if c.Users == 0 {
			c.Users = c.GroupSize * c.Groups
		}
		if c.Sockets == 0 {
			c.Sockets = c.Users
		}
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Drain == 0 {
		c.Drain = 5 * time.Second
	}
	if c.MaxP99 == 0 {
		c.MaxP99 = time.Second
	}
	if c.BodyBytes == 0 {
		c.BodyBytes = 64
	}
	if c.DialConcurrency == 0 {
		c.DialConcurrency = 64
	}
	if c.SetupConcurrency == 0 {
		c.SetupConcurrency = 16
	}
	if c.SetupTimeout == 0 {
		c.SetupTimeout = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Limits that keep a run bounded whatever its flags say.
const (
	maxSockets  = 1 << 20
	maxRate     = 1e7
	maxDuration = 24 * time.Hour
	maxSteps    = 64
	maxBody     = 1 << 20
	minBody     = 40
)

// Validate reports every problem of c (with defaults applied) at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if len(c.JWTSecret) < 32 {
		bad("jwt secret must be at least 32 bytes, got %d", len(c.JWTSecret))
	}
	if c.Auth != AuthHeader && c.Auth != AuthFrame {
		bad("auth must be %q or %q, got %q", AuthHeader, AuthFrame, c.Auth)
	}
	if c.Protocol != ProtocolParley && c.Protocol != ProtocolCentrifugo {
		bad("protocol must be %q or %q, got %q", ProtocolParley, ProtocolCentrifugo, c.Protocol)
	}
	if c.Sockets < 1 || c.Sockets > maxSockets {
		bad("sockets must be from 1 to %d, got %d", maxSockets, c.Sockets)
	}
	switch c.Shape {
	case ShapeDirect:
		if c.Users < 2 || c.Users%2 != 0 {
			bad("a direct shape needs an even number of users, at least 2; got %d", c.Users)
		}
	case ShapeGroup:
		if c.GroupSize < 2 || c.GroupSize > MaxGroupSize {
			bad("group size must be from 2 to %d, got %d", MaxGroupSize, c.GroupSize)
		}
		if c.Groups < 1 {
			bad("groups must be at least 1, got %d", c.Groups)
		}
		if c.Users != c.GroupSize*c.Groups {
			bad("a group shape has groups × group size = %d users, not %d", c.GroupSize*c.Groups, c.Users)
		}
	default:
		bad("shape must be %q or %q, got %q", ShapeDirect, ShapeGroup, c.Shape)
	}
	if c.UserPrefix != "" && !schemas.ValidUserID(c.UserPrefix+"0") {
		bad("user prefix %q does not make valid user ids ([A-Za-z0-9._@+-], at most 128)", c.UserPrefix)
	}
	if c.Users > maxSockets {
		bad("at most %d users, got %d", maxSockets, c.Users)
	}
	if c.Rate < 0 || c.Rate > maxRate {
		bad("rate must be from 0 to %g msg/s, got %g", maxRate, c.Rate)
	}
	if len(c.StepRates) > maxSteps {
		bad("at most %d step rates, got %d", maxSteps, len(c.StepRates))
	}
	for _, r := range c.StepRates {
		if r <= 0 || r > maxRate {
			bad("every step rate must be above 0 and at most %g msg/s, got %g", maxRate, r)
		}
	}
	if c.Duration <= 0 || c.Duration > maxDuration {
		bad("duration must be above 0 and at most %s, got %s", maxDuration, c.Duration)
	}
	if c.Drain < 0 || c.Drain > time.Hour {
		bad("drain must be from 0 to 1h, got %s", c.Drain)
	}
	if c.MaxP99 <= 0 {
		bad("max p99 must be above 0, got %s", c.MaxP99)
	}
	if c.BodyBytes < minBody || c.BodyBytes > maxBody {
		bad("body bytes must be from %d to %d, got %d", minBody, maxBody, c.BodyBytes)
	}
	for _, a := range c.SourceAddrs {
		if !a.IsValid() {
			bad("invalid source address")
		}
	}
	if c.DialConcurrency < 1 || c.SetupConcurrency < 1 {
		bad("dial and setup concurrency must be at least 1")
	}
	if c.SetupTimeout <= 0 {
		bad("setup timeout must be above 0, got %s", c.SetupTimeout)
	}
	if c.PID < 0 {
		bad("pid must not be negative, got %d", c.PID)
	}
	return errors.Join(errs...)
}

// rates returns the rate of each phase.
func (c Config) rates() []float64 {
	if len(c.StepRates) > 0 {
		return c.StepRates
	}
	return []float64{c.Rate}
}
