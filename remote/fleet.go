package remote

import (
	"context"
	"sync"
)

// DefaultParallelism bounds fleet-wide operations.
const DefaultParallelism = 10

// ForEach calls fn for every item with at most parallelism calls at once
// (DefaultParallelism when <= 0) and returns the errors in item order (nil
// for items that succeeded). It returns once every call has returned; items
// not yet started when ctx ends get ctx.Err().
func ForEach[T any](ctx context.Context, parallelism int, items []T, fn func(context.Context, T) error) []error {
	if parallelism <= 0 {
		parallelism = DefaultParallelism
	}
	errs := make([]error, len(items))
	sem := make(chan struct{}, parallelism)
	var wg sync.WaitGroup
	for i, it := range items {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			for j := i; j < len(items); j++ {
				errs[j] = ctx.Err()
			}
			wg.Wait()
			return errs
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = fn(ctx, it)
		}()
	}
	wg.Wait()
	return errs
}
