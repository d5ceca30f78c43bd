package server

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/go-sdtp/sdtp/llama"
)

// metrics are the server's Prometheus series, on a registry of its own so
// two servers in one process do not collide. The process collector adds
// process_resident_memory_bytes, which the load test reads for RSS.
type metrics struct {
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec // by handler, code and method (promhttp)
	prompt    prometheus.Counter
	reused    prometheus.Counter
	generated prometheus.Counter
	pruned    prometheus.Counter
	prefill   *prometheus.HistogramVec // by mode
	decode    prometheus.Histogram
	cancelled *prometheus.CounterVec // by phase: queue, prefill, decode
	queue     prometheus.Gauge
	busy      prometheus.Gauge
}

func newMetrics(slots int) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sdtp_requests_total",
		Help: "HTTP requests by handler, status code and method."}, []string{"handler", "code", "method"})
	m.prompt = prometheus.NewCounter(prometheus.CounterOpts{Name: "sdtp_prompt_tokens_total",
		Help: "Prompt tokens of finished requests, reused ones included."})
	m.reused = prometheus.NewCounter(prometheus.CounterOpts{Name: "sdtp_prompt_tokens_reused_total",
		Help: "Prompt tokens served from a slot's KV cache (prefix reuse)."})
	m.generated = prometheus.NewCounter(prometheus.CounterOpts{Name: "sdtp_generated_tokens_total",
		Help: "Tokens generated."})
	m.pruned = prometheus.NewCounter(prometheus.CounterOpts{Name: "sdtp_pruned_tokens_total",
		Help: "Prompt tokens dropped by a pruning stage during prefill."})
	m.prefill = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sdtp_prefill_seconds",
		Help: "Prefill time per request, by prefill mode.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}, []string{"mode"})
	m.decode = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sdtp_decode_seconds",
		Help: "Decode (generation) time per request.", Buckets: prometheus.ExponentialBuckets(0.01, 2, 14)})
	m.cancelled = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sdtp_requests_cancelled_total",
		Help: "Requests whose client went away, by where they were: queue, prefill or decode."}, []string{"phase"})
	m.queue = prometheus.NewGauge(prometheus.GaugeOpts{Name: "sdtp_queue_depth", Help: "Requests waiting for a slot."})
	m.busy = prometheus.NewGauge(prometheus.GaugeOpts{Name: "sdtp_slots_busy", Help: "Slots serving a request."})
	slotsTotal := prometheus.NewGauge(prometheus.GaugeOpts{Name: "sdtp_slots", Help: "Slots (--parallel)."})
	slotsTotal.Set(float64(slots))
	for _, c := range []prometheus.Collector{m.requests, m.prompt, m.reused, m.generated, m.pruned, m.prefill,
		m.decode, m.cancelled, m.queue, m.busy, slotsTotal,
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector()} {
		f(c)
	}
	return m
}

// instrument counts a handler's requests by status code.
func (m *metrics) instrument(name string, h http.Handler) http.Handler {
	return promhttp.InstrumentHandlerCounter(m.requests.MustCurryWith(prometheus.Labels{"handler": name}), h)
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// observe records a finished (or partly finished) generation.
func (m *metrics) observe(mode string, res llama.Result, pruned int) {
	if res.PromptTokens == 0 {
		return // refused before the prefill
	}
	m.prompt.Add(float64(res.PromptTokens))
	m.reused.Add(float64(res.ReusedTokens))
	m.generated.Add(float64(res.GeneratedTokens))
	m.pruned.Add(float64(pruned))
	m.prefill.WithLabelValues(mode).Observe(res.Prefill.Seconds())
	if res.GeneratedTokens > 0 {
		m.decode.Observe(res.Decode.Seconds())
	}
}
