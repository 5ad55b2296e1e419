package client

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
)

// Defaults of the options of New.
const (
	// DefaultAttemptTimeout bounds a single attempt of a call: one RPC to
	// one node. A call that needs more attempts may take longer, up to its
	// context's deadline.
	DefaultAttemptTimeout = 2 * time.Second
	// DefaultTimeout bounds a whole call, retries included, when its
	// context has no deadline.
	DefaultTimeout = 15 * time.Second
	// DefaultBackoffBase is the first pause between two attempts.
	DefaultBackoffBase = 10 * time.Millisecond
	// DefaultBackoffMax bounds the pause between two attempts.
	DefaultBackoffMax = 500 * time.Millisecond
	// DefaultBreakerFailures is the number of consecutive failures after
	// which a node is skipped.
	DefaultBreakerFailures = 3
	// DefaultBreakerCooldown is how long a node is first skipped for.
	DefaultBreakerCooldown = time.Second
	// MaxBreakerCooldown bounds the cooldown, which doubles each time a
	// node fails again right after one. A cooldown set above it is kept as
	// is and never doubles.
	MaxBreakerCooldown = 30 * time.Second
)

// An Option configures a Client in New.
type Option func(*config)

// config is the Client's configuration: defaultConfig, then the options.
type config struct {
	dialOptions     []grpc.DialOption
	attemptTimeout  time.Duration
	defaultTimeout  time.Duration
	backoffBase     time.Duration
	backoffMax      time.Duration
	breakerFailures int
	breakerCooldown time.Duration
	logger          *slog.Logger
}

func defaultConfig() config {
	return config{
		attemptTimeout:  DefaultAttemptTimeout,
		defaultTimeout:  DefaultTimeout,
		backoffBase:     DefaultBackoffBase,
		backoffMax:      DefaultBackoffMax,
		breakerFailures: DefaultBreakerFailures,
		breakerCooldown: DefaultBreakerCooldown,
		logger:          slog.New(slog.DiscardHandler),
	}
}

func (c *config) validate() error {
	switch {
	case c.attemptTimeout <= 0:
		return fmt.Errorf("ringkv: attempt timeout %v: must be > 0", c.attemptTimeout)
	case c.defaultTimeout <= 0:
		return fmt.Errorf("ringkv: default timeout %v: must be > 0", c.defaultTimeout)
	case c.backoffBase <= 0 || c.backoffMax < c.backoffBase:
		return fmt.Errorf("ringkv: backoff %v..%v: need 0 < base <= max", c.backoffBase, c.backoffMax)
	case c.breakerFailures < 1:
		return fmt.Errorf("ringkv: circuit breaker after %d failures: must be >= 1", c.breakerFailures)
	case c.breakerCooldown <= 0:
		return fmt.Errorf("ringkv: circuit breaker cooldown %v: must be > 0", c.breakerCooldown)
	}
	return nil
}

// WithDialOptions adds gRPC dial options to every connection the client
// opens. They apply after the default, grpc.WithTransportCredentials with
// insecure credentials, so a credentials option given here replaces it.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(c *config) { c.dialOptions = append(c.dialOptions, opts...) }
}

// WithTLS makes every connection TLS with cfg: cfg.RootCAs must hold the
// cluster's CA, and a client certificate in cfg.Certificates is presented
// when a node asks (see package pki: pki.Files.ClientConfig builds cfg from
// PEM files).
func WithTLS(cfg *tls.Config) Option {
	return WithDialOptions(grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
}

// WithAttemptTimeout sets how long a single attempt of a call (one RPC to one
// node) may take before the client gives up on it and retries elsewhere.
// Default: DefaultAttemptTimeout.
func WithAttemptTimeout(d time.Duration) Option {
	return func(c *config) { c.attemptTimeout = d }
}

// WithDefaultTimeout sets the deadline of a call, retries included, whose
// context has none. Default: DefaultTimeout.
func WithDefaultTimeout(d time.Duration) Option {
	return func(c *config) { c.defaultTimeout = d }
}

// WithBackoff sets the pause between two attempts of a call: it starts at
// base and doubles up to max; each pause is drawn uniformly from its upper
// half. Defaults: DefaultBackoffBase, DefaultBackoffMax.
func WithBackoff(base, max time.Duration) Option {
	return func(c *config) { c.backoffBase, c.backoffMax = base, max }
}

// WithLogger sets the logger the client reports retries and node health to.
// Default: a logger that discards everything.
func WithLogger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.logger = l
		}
	}
}

// WithCircuitBreaker sets when a node is skipped: after failures consecutive
// failed attempts, for cooldown, doubling up to MaxBreakerCooldown each time
// the node fails again once the cooldown is over. Defaults:
// DefaultBreakerFailures, DefaultBreakerCooldown.
func WithCircuitBreaker(failures int, cooldown time.Duration) Option {
	return func(c *config) { c.breakerFailures, c.breakerCooldown = failures, cooldown }
}
