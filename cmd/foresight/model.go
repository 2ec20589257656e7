package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/foresightscale/foresight/models"
)

func newModelCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "model", Short: "Build and inspect forecasting models"}
	cmd.AddCommand(newModelBuildCommand())
	return cmd
}

func newModelBuildCommand() *cobra.Command {
	out := models.DemoDir
	cmd := &cobra.Command{
		Use:   "build",
		Short: "Rebuild the demo model from the synthetic workload (deterministic)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			start := time.Now()
			report, err := models.BuildDemo(cmd.Context(), out)
			if err != nil {
				return fmt.Errorf("building demo model: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s/model.onnx and manifest.json in %v (train windows %d, validation %d)\n",
				out, time.Since(start).Round(time.Millisecond), report.TrainWindows, report.ValidationWindows)
			for target, mae := range report.MAE {
				fmt.Fprintf(cmd.OutOrStdout(), "  %-9s validation MAE %.4g (last value %.4g)\n", target, mae, report.LastValueMAE[target])
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", out, "Directory to write model.onnx and manifest.json into.")
	return cmd
}
