package main

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/foresightscale/foresight/internal/reclaim"
)

// Timing of serve's memory reclaim (--reclaim-memory).
const (
	// reclaimStartWait bounds the wait for every application's first
	// cycle; an application that cannot forecast does not keep start-up
	// pages resident for ever.
	reclaimStartWait = 2 * time.Minute
	// reclaimSettle lets the API server finish its own start-up work (its
	// first discovery and OpenAPI answers) before the pages go.
	reclaimSettle = 5 * time.Second
	// Heap: checked every second, released once a burst of at least 4 MiB
	// of allocation has ended, at most every 5 s (each release is a full
	// collection). A 500-service cycle allocates tens of MiB.
	reclaimHeapCheck     = time.Second
	reclaimHeapInterval  = 5 * time.Second
	reclaimHeapAllocated = 4 << 20
)

// reclaimMemory gives back, once every application has forecast (or
// reclaimStartWait passed), the executable's pages only start-up used,
// then the heap each burst of forecasting frees, until ctx ends.
//
// The kernel keeps the pages another process maps too, and a retraining
// child runs the same executable: with trainingTurn (serve's one training
// run at a time; nil without retraining) the pages go while no child runs.
func reclaimMemory(ctx context.Context, apps []*application, trainingTurn chan struct{}, log *slog.Logger) {
	deadline := time.Now().Add(reclaimStartWait)
	for !allReady(apps) && time.Now().Before(deadline) {
		if sleepCtx(ctx, time.Second) != nil {
			return
		}
	}
	if sleepCtx(ctx, reclaimSettle) != nil {
		return
	}
	if trainingTurn != nil {
		select {
		case trainingTurn <- struct{}{}:
		case <-ctx.Done():
			return
		}
	}
	before, after, err := reclaim.Executable()
	if trainingTurn != nil {
		<-trainingTurn
	}
	switch {
	case errors.Is(err, reclaim.ErrUnsupported):
		log.Info("start-up pages of the executable stay resident: this kernel cannot reclaim them on request (Linux 5.4 or later can)")
	case err != nil:
		log.Warn("could not give back the executable's start-up pages", "err", err)
	default:
		log.Info("gave back the executable's start-up pages", "file_backed_resident_mib_before", before>>20, "file_backed_resident_mib_after", after>>20)
	}
	reclaim.Heap(ctx, reclaimHeapCheck, reclaimHeapInterval, reclaimHeapAllocated)
}

func allReady(apps []*application) bool {
	for _, a := range apps {
		if a.loop.Ready() != nil {
			return false
		}
	}
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
