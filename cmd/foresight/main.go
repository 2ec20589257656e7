// Command foresight forecasts per-service load and serves predicted replica
// counts to the Kubernetes autoscalers.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	"github.com/foresightscale/foresight/models/training"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newRootCommand().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "foresight:", err)
		os.Exit(exitStatus(err))
	}
}

// Exit statuses other than 0. A supervisor running `foresight train` on a
// schedule tells "the application is too young yet, try later" from a
// failure by them.
const (
	exitFailed           = 1
	exitNotEnoughHistory = 3
)

// exitStatus is the process's exit status for a command's error.
func exitStatus(err error) int {
	if errors.Is(err, training.ErrNotEnoughHistory) {
		return exitNotEnoughHistory
	}
	return exitFailed
}

func newRootCommand() *cobra.Command {
	var logLevel string
	root := &cobra.Command{
		Use:           "foresight",
		Short:         "Proactive autoscaling: forecasts served to HPA, KEDA and VPA",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			slog.SetDefault(logger)
			// The Kubernetes libraries log through klog: send it to the same place.
			klog.SetSlogLogger(logger)
			return nil
		},
	}
	root.PersistentFlags().StringVar(&logLevel, "log-level", "info", "Log level: debug, info, warn or error.")
	root.AddCommand(newServeCommand(), newTrainCommand(), newBacktestCommand(), newSimulateCommand(), newCertsCommand(), newTopologyCommand())
	return root
}
