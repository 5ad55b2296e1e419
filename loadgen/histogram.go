package loadgen

import (
	"math"
	"math/bits"
	"time"
)

// The histogram's buckets are log-linear, as in HdrHistogram: durations
// below 2^subBits ns each have a bucket of their own, and every power of
// two above is cut into 2^(subBits-1) equal buckets. A bucket is at most
// 1/2^(subBits-1) of its lower bound wide, so any quantile is reported
// within 0.8% (subBits 8) of the true value.
const (
	subBits  = 8
	subCount = 1 << subBits // buckets below 2^subBits ns: one per ns
	halfSub  = subCount / 2 // buckets per power of two above
	maxShift = 38 - subBits // the last power of two tracked: [2^37, 2^38) ns, 137-275 s
	nBuckets = subCount + maxShift*halfSub
)

// MaxTrackable is the longest duration a Histogram tells apart from longer
// ones: longer durations are counted in its last bucket. Max stays exact.
const MaxTrackable = time.Duration(1<<38 - 1)

// Histogram counts durations in log-linear buckets and answers quantiles
// within 0.8%. Its zero value is empty and ready to use; its buckets take
// 32 KiB once the first duration is recorded. A Histogram is not safe for
// concurrent use: give each goroutine its own and Merge them.
type Histogram struct {
	counts []uint64 // nBuckets once anything is recorded
	n      uint64
	sum    time.Duration
	min    time.Duration
	max    time.Duration
}

// bucketOf returns the index of the bucket that counts v nanoseconds.
func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits // >= 1
	if shift > maxShift {
		return nBuckets - 1
	}
	return subCount + (shift-1)*halfSub + int(v>>shift) - halfSub
}

// bucketBounds returns the smallest and largest value bucket i counts.
func bucketBounds(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	k := i - subCount
	shift := uint(k/halfSub + 1)
	mant := uint64(k%halfSub + halfSub)
	return mant << shift, (mant+1)<<shift - 1
}

// Record counts one duration. A negative duration counts as 0.
func (h *Histogram) Record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	if h.counts == nil {
		h.counts = make([]uint64, nBuckets)
	}
	h.counts[bucketOf(uint64(d))]++
	if h.n == 0 || d < h.min {
		h.min = d
	}
	if d > h.max {
		h.max = d
	}
	h.n++
	h.sum += d
}

// Merge adds every duration o counted to h.
func (h *Histogram) Merge(o *Histogram) {
	if o == nil || o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, nBuckets)
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	h.max = max(h.max, o.max)
	h.n += o.n
	h.sum += o.sum
}

// Count returns how many durations were recorded.
func (h *Histogram) Count() uint64 { return h.n }

// Min returns the shortest duration recorded, 0 when none was.
func (h *Histogram) Min() time.Duration { return h.min }

// Max returns the longest duration recorded, 0 when none was.
func (h *Histogram) Max() time.Duration { return h.max }

// Mean returns the average duration, 0 when none was recorded.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return h.sum / time.Duration(h.n)
}

// Quantile returns the duration that a fraction q (0..1) of the recorded
// durations do not exceed: the upper bound of the bucket that holds the
// ⌈q·n⌉-th shortest one, kept within [Min, Max]. So Quantile(1) is Max and
// Quantile(0) is Min. It returns 0 when nothing was recorded.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		return h.min
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = max(1, min(rank, h.n))
	if rank == h.n {
		return h.max
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			_, hi := bucketBounds(i)
			return min(max(time.Duration(hi), h.min), h.max)
		}
	}
	return h.max // not reached: the counts add up to n
}
