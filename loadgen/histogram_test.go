package loadgen

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestBucketsCoverEveryValueOnce(t *testing.T) {
	// Adjacent buckets meet exactly: each starts one past the previous end.
	var next uint64
	for i := range nBuckets {
		lo, hi := bucketBounds(i)
		if lo != next || hi < lo {
			t.Fatalf("bucket %d = [%d, %d]; want it to start at %d", i, lo, hi, next)
		}
		if got := bucketOf(lo); got != i {
			t.Fatalf("bucketOf(%d) = %d; want %d", lo, got, i)
		}
		if got := bucketOf(hi); got != i {
			t.Fatalf("bucketOf(%d) = %d; want %d", hi, got, i)
		}
		next = hi + 1
	}
	if want := uint64(MaxTrackable) + 1; next != want {
		t.Fatalf("buckets end at %d; want %d", next, want)
	}
}

func TestBucketWidthWithinPrecision(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 100000 {
		v := r.Uint64N(uint64(MaxTrackable))
		lo, hi := bucketBounds(bucketOf(v))
		if v < lo || v > hi {
			t.Fatalf("value %d in bucket [%d, %d]", v, lo, hi)
		}
		if float64(hi-lo) > float64(lo)/halfSub {
			t.Fatalf("value %d: bucket [%d, %d] wider than 1/%d of its start", v, lo, hi, halfSub)
		}
	}
	if got := bucketOf(1 << 62); got != nBuckets-1 {
		t.Errorf("bucketOf(2^62) = %d; want the last bucket %d", got, nBuckets-1)
	}
}

func TestQuantilesOfUniformDurations(t *testing.T) {
	var h Histogram
	// 1..10000 µs, shuffled: the q quantile is q·10 ms.
	r := rand.New(rand.NewPCG(3, 4))
	for _, i := range r.Perm(10000) {
		h.Record(time.Duration(i+1) * time.Microsecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 5 * time.Millisecond},
		{0.9, 9 * time.Millisecond},
		{0.99, 9900 * time.Microsecond},
		{0.999, 9990 * time.Microsecond},
	} {
		got := h.Quantile(tc.q)
		if diff := float64(got-tc.want) / float64(tc.want); diff < 0 || diff > 1.0/halfSub {
			t.Errorf("Quantile(%v) = %v; want %v, or at most 0.8%% more", tc.q, got, tc.want)
		}
	}
	if got, want := h.Quantile(0), time.Microsecond; got != want {
		t.Errorf("Quantile(0) = %v; want Min %v", got, want)
	}
	if got, want := h.Quantile(1), 10*time.Millisecond; got != want {
		t.Errorf("Quantile(1) = %v; want Max %v", got, want)
	}
	if got, want := h.Min(), time.Microsecond; got != want {
		t.Errorf("Min() = %v; want %v", got, want)
	}
	if got, want := h.Max(), 10*time.Millisecond; got != want {
		t.Errorf("Max() = %v; want %v", got, want)
	}
	if got, want := h.Mean(), 5000500*time.Nanosecond; got != want {
		t.Errorf("Mean() = %v; want %v", got, want)
	}
	if got := h.Count(); got != 10000 {
		t.Errorf("Count() = %d; want 10000", got)
	}
}

func TestQuantileOfATail(t *testing.T) {
	// 990 fast calls and 10 slow ones: p99 is fast, p99.9 and max are slow.
	var h Histogram
	for range 990 {
		h.Record(2 * time.Millisecond)
	}
	for range 10 {
		h.Record(300 * time.Millisecond)
	}
	if got := h.Quantile(0.99); got < 2*time.Millisecond || got > 2*time.Millisecond*(halfSub+1)/halfSub {
		t.Errorf("p99 = %v; want 2ms, or at most 0.8%% more", got)
	}
	if got := h.Quantile(0.999); got != 300*time.Millisecond {
		t.Errorf("p99.9 = %v; want 300ms", got)
	}
}

func TestMergeEqualsRecordingEverything(t *testing.T) {
	var all, a, b Histogram
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 5000 {
		d := time.Duration(r.Int64N(int64(time.Second)))
		all.Record(d)
		if i%3 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
	}
	var m Histogram
	m.Merge(&a)
	m.Merge(&b)
	m.Merge(nil)
	m.Merge(&Histogram{})
	for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
		if got, want := m.Quantile(q), all.Quantile(q); got != want {
			t.Errorf("merged Quantile(%v) = %v; want %v", q, got, want)
		}
	}
	if m.Count() != all.Count() || m.Min() != all.Min() || m.Max() != all.Max() || m.Mean() != all.Mean() {
		t.Errorf("merged count/min/max/mean = %d/%v/%v/%v; want %d/%v/%v/%v",
			m.Count(), m.Min(), m.Max(), m.Mean(), all.Count(), all.Min(), all.Max(), all.Mean())
	}
}

func TestEmptyAndOutOfRange(t *testing.T) {
	var h Histogram
	if h.Quantile(0.5) != 0 || h.Mean() != 0 || h.Max() != 0 || h.Count() != 0 {
		t.Errorf("empty histogram: p50 %v, mean %v, max %v, count %d; want zeros", h.Quantile(0.5), h.Mean(), h.Max(), h.Count())
	}
	h.Record(-time.Second)
	h.Record(time.Hour)
	if got := h.Min(); got != 0 {
		t.Errorf("Min() after a negative duration = %v; want 0", got)
	}
	if got := h.Quantile(1); got != time.Hour {
		t.Errorf("Quantile(1) = %v; want the exact Max 1h beyond MaxTrackable", got)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h Histogram
	d := 1234567 * time.Nanosecond
	for i := 0; b.Loop(); i++ {
		h.Record(d + time.Duration(i&1023))
	}
}
