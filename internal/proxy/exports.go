package proxy

import (
	"sync"
	"time"

	"github.com/wxgate/wxgate/internal/errs"
)

// ExportLimits bound the exports one replica streams at once (docs/api.md,
// "Exports"). A stalled export holds about a megabyte (buffers, the page
// in hand, the connection) until its write deadline ends it, and the
// tenant rate limit bounds how fast exports start, not how many run: these
// caps bound how many run.
type ExportLimits struct {
	// PerTenant is how many exports one tenant may run at once on a replica.
	PerTenant int
	// PerReplica is how many exports a replica runs at once, all tenants
	// together.
	PerReplica int
	// Deadline is the absolute time an export may take to reach its client,
	// counted from when it took its slot: a stalled or slow reader is cut off then,
	// whatever it read so far.
	Deadline time.Duration
}

// Defaults of the export limits (WXGATE_EXPORT_MAX_PER_TENANT,
// WXGATE_EXPORT_MAX_PER_REPLICA, WXGATE_EXPORT_DEADLINE).
const (
	DefaultExportsPerTenant  = 4
	DefaultExportsPerReplica = 64
	DefaultExportDeadline    = 30 * time.Minute
)

// exportRetryAfter is what a refused export is told: exports are long, so
// there is no exact time at which a slot frees; a minute is a polite retry.
const exportRetryAfter = time.Minute

// Exports counts the exports running on this replica and refuses one above
// either cap. The zero value refuses nothing.
type Exports struct {
	limits ExportLimits
	mu     sync.Mutex
	total  int
	tenant map[string]int
}

// NewExports returns the counter for limits; a cap <= 0 is unlimited.
func NewExports(limits ExportLimits) *Exports {
	return &Exports{limits: limits, tenant: map[string]int{}}
}

// Limits returns the limits in force.
func (e *Exports) Limits() ExportLimits { return e.limits }

// Start takes a slot for one export of tenantID and returns the function
// that gives it back (call it exactly once, when the export ends). Above a
// cap it answers rate_limited with details.scope "tenant_exports" or
// "replica_exports" and a Retry-After.
func (e *Exports) Start(tenantID string) (func(), error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.tenant == nil {
		e.tenant = map[string]int{}
	}
	scope, limit := "", 0
	switch {
	case e.limits.PerTenant > 0 && e.tenant[tenantID] >= e.limits.PerTenant:
		scope, limit = "tenant_exports", e.limits.PerTenant
	case e.limits.PerReplica > 0 && e.total >= e.limits.PerReplica:
		scope, limit = "replica_exports", e.limits.PerReplica
	}
	if scope != "" {
		return nil, errs.E(errs.RateLimited, "too many exports running at once; retry when one has finished").
			WithDetails(map[string]any{"scope": scope, "limit": limit}).WithRetryAfter(exportRetryAfter)
	}
	e.total++
	e.tenant[tenantID]++
	var once sync.Once
	return func() {
		once.Do(func() {
			e.mu.Lock()
			defer e.mu.Unlock()
			e.total--
			if e.tenant[tenantID]--; e.tenant[tenantID] <= 0 {
				delete(e.tenant, tenantID)
			}
		})
	}, nil
}
