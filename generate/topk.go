package generate

import "math"

// Ties in torch.topk on CPU are ordered by the algorithms PyTorch calls
// (aten/src/ATen/native/TopKImpl.h): std::partial_sort when k·64 <= n, else
// std::nth_element followed by std::sort of the first k-1 entries, over
// (value, index) pairs with the comparator "x is NaN and y is not, or
// x > y". Neither is stable, so the order among equal values is whatever
// libstdc++'s introselect / heap algorithms produce. topK re-implements those
// algorithms (heap select, median-of-three introselect, insertion sort)
// so that beam search picks the same candidates as HF when scores tie exactly
// (forced tokens, equal logits).

type scored struct {
	v   float32
	idx int
}

// before is the comparator of torch.topk(largest=True).
func before(x, y scored) bool {
	xn, yn := math.IsNaN(float64(x.v)), math.IsNaN(float64(y.v))
	return (xn && !yn) || x.v > y.v
}

// topK returns the indices of the k largest values in torch.topk's order.
func topK(values []float32, k int) []int {
	n := len(values)
	if k <= 0 || n == 0 {
		return nil
	}
	k = min(k, n)
	var q []scored
	if k*64 <= n {
		q = heapSelectStream(values, k)
		sortHeap(q)
	} else {
		q = make([]scored, n)
		for i, v := range values {
			q[i] = scored{v, i}
		}
		nthElement(q, k-1)
		introSort(q[:k-1])
		q = q[:k]
	}
	out := make([]int, k)
	for i := range out {
		out[i] = q[i].idx
	}
	return out
}

// heapSelectStream is std::__heap_select over the whole array, reading the
// values in place: a heap of the first k pairs, then every later pair that
// beats the heap's top replaces it.
func heapSelectStream(values []float32, k int) []scored {
	h := make([]scored, k)
	for i := range h {
		h[i] = scored{values[i], i}
	}
	makeHeap(h)
	for i := k; i < len(values); i++ {
		c := scored{values[i], i}
		if before(c, h[0]) {
			// __pop_heap(first, middle, i): the top goes to position i (discarded), c sifts in
			adjustHeap(h, 0, len(h), c)
		}
	}
	return h
}

func makeHeap(h []scored) {
	n := len(h)
	if n < 2 {
		return
	}
	for parent := (n - 2) / 2; ; parent-- {
		adjustHeap(h, parent, n, h[parent])
		if parent == 0 {
			return
		}
	}
}

func adjustHeap(h []scored, hole, n int, value scored) {
	top := hole
	child := hole
	for child < (n-1)/2 {
		child = 2 * (child + 1)
		if before(h[child], h[child-1]) {
			child--
		}
		h[hole] = h[child]
		hole = child
	}
	if n&1 == 0 && child == (n-2)/2 {
		child = 2 * (child + 1)
		h[hole] = h[child-1]
		hole = child - 1
	}
	// __push_heap
	parent := (hole - 1) / 2
	for hole > top && before(h[parent], value) {
		h[hole] = h[parent]
		hole = parent
		parent = (hole - 1) / 2
	}
	h[hole] = value
}

func sortHeap(h []scored) {
	for last := len(h) - 1; last > 0; last-- {
		v := h[last]
		h[last] = h[0]
		adjustHeap(h[:last], 0, last, v)
	}
}

func floorLog2(n int) int {
	l := 0
	for n > 1 {
		n >>= 1
		l++
	}
	return l
}

// nthElement is std::nth_element (libstdc++'s __introselect).
func nthElement(q []scored, nth int) {
	if len(q) == 0 || nth >= len(q) {
		return
	}
	first, last := 0, len(q)
	depth := floorLog2(len(q)) * 2
	for last-first > 3 {
		if depth == 0 {
			heapSelectRange(q[first:last], nth+1-first)
			q[first], q[nth] = q[nth], q[first]
			return
		}
		depth--
		cut := partitionPivot(q, first, last)
		if cut <= nth {
			first = cut
		} else {
			last = cut
		}
	}
	insertionSort(q[first:last])
}

// heapSelectRange is std::__heap_select(first, first+mid, last).
func heapSelectRange(q []scored, mid int) {
	makeHeap(q[:mid])
	for i := mid; i < len(q); i++ {
		if before(q[i], q[0]) {
			v := q[i]
			q[i] = q[0]
			adjustHeap(q[:mid], 0, mid, v)
		}
	}
}

// partitionPivot is std::__unguarded_partition_pivot.
func partitionPivot(q []scored, first, last int) int {
	mid := first + (last-first)/2
	moveMedianToFirst(q, first, first+1, mid, last-1)
	// __unguarded_partition(first+1, last, pivot=first)
	lo, hi := first+1, last
	for {
		for before(q[lo], q[first]) {
			lo++
		}
		hi--
		for before(q[first], q[hi]) {
			hi--
		}
		if !(lo < hi) {
			return lo
		}
		q[lo], q[hi] = q[hi], q[lo]
		lo++
	}
}

func moveMedianToFirst(q []scored, result, a, b, c int) {
	swap := func(i int) { q[result], q[i] = q[i], q[result] }
	switch {
	case before(q[a], q[b]):
		if before(q[b], q[c]) {
			swap(b)
		} else if before(q[a], q[c]) {
			swap(c)
		} else {
			swap(a)
		}
	case before(q[a], q[c]):
		swap(a)
	case before(q[b], q[c]):
		swap(c)
	default:
		swap(b)
	}
}

func insertionSort(q []scored) {
	for i := 1; i < len(q); i++ {
		v := q[i]
		if before(v, q[0]) {
			copy(q[1:i+1], q[:i])
			q[0] = v
			continue
		}
		unguardedLinearInsert(q, i)
	}
}

func unguardedLinearInsert(q []scored, last int) {
	v := q[last]
	next := last - 1
	for before(v, q[next]) {
		q[last] = q[next]
		last = next
		next--
	}
	q[last] = v
}

const sortThreshold = 16

// introSort is std::sort: introsort down to runs of 16, then insertion sort.
func introSort(q []scored) {
	if len(q) < 2 {
		return
	}
	introsortLoop(q, 0, len(q), floorLog2(len(q))*2)
	if len(q) > sortThreshold {
		insertionSort(q[:sortThreshold])
		for i := sortThreshold; i < len(q); i++ {
			unguardedLinearInsert(q, i)
		}
	} else {
		insertionSort(q)
	}
}

func introsortLoop(q []scored, first, last, depth int) {
	for last-first > sortThreshold {
		if depth == 0 {
			// std::__partial_sort(first, last, last)
			heapSelectRange(q[first:last], last-first)
			sortHeap(q[first:last])
			return
		}
		depth--
		cut := partitionPivot(q, first, last)
		introsortLoop(q, cut, last, depth)
		last = cut
	}
}
