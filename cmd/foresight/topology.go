package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/foresightscale/foresight/forecaster/config"
	"github.com/foresightscale/foresight/forecaster/discovery"
	"github.com/foresightscale/foresight/forecaster/source"
	"github.com/foresightscale/foresight/forecaster/topology"
)

type topologyOptions struct {
	prometheusURL string
	configFile    string
	app           string
	namespace     string
	format        string
	mesh          string
	window        time.Duration
	at            string
	out           string
}

// topologyWriters are the --format values and their writers.
var topologyWriters = map[string]func(io.Writer, topology.Graph) error{
	"csv":  topology.WriteCSV,
	"yaml": topology.WriteYAML,
	"dot":  topology.WriteDOT,
}

func newTopologyCommand() *cobra.Command {
	o := &topologyOptions{format: "csv", mesh: "auto", window: discovery.DefaultWindow}
	cmd := &cobra.Command{
		Use:   "topology --prometheus-url URL [--namespace NS] [--format csv|yaml|dot]",
		Short: "Discover the call graph from service-mesh or tracing metrics and print it",
		Long: `Reads the request rates between services that Istio (istio_requests_total),
Linkerd (request_total / response_total) or the OpenTelemetry servicegraph connector
or Tempo (traces_service_graph_request_total) export to Prometheus, and prints the
call graph with each call's fan-out (calls to the callee per request the caller
receives, averaged over --window). With --mesh auto the first mesh with series wins.

The CSV output is what 'foresight train --call-graph FILE' reads; YAML is for review,
DOT for Graphviz (dot -Tsvg). A summary goes to standard error. See docs/topology.md.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return o.run(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.prometheusURL, "prometheus-url", "", "Prometheus-API server to read the mesh metrics from (overrides --config's source.prometheus.url).")
	f.StringVar(&o.configFile, "config", "", "Foresight configuration file: its source.prometheus (URL, tenant, TLS/auth) and namespace are used.")
	f.StringVar(&o.app, "app", "", "With a --config that lists apps: the application whose namespace to read (needed when there are several).")
	f.StringVar(&o.namespace, "namespace", "", `Namespace of the application (default from --config, else "default").`)
	f.StringVar(&o.format, "format", o.format, "Output format: csv, yaml or dot.")
	f.StringVar(&o.mesh, "mesh", o.mesh, "Metrics to read: auto, istio, linkerd or otel.")
	f.DurationVar(&o.window, "window", o.window, "Rate window the fan-outs are averaged over.")
	f.StringVar(&o.at, "at", "", "End of the window (RFC 3339); default now.")
	f.StringVar(&o.out, "out", "", "Write the graph to this file (through a temporary file and a rename) instead of standard output.")
	return cmd
}

func (o *topologyOptions) run(ctx context.Context, stdout, stderr io.Writer) error {
	write, ok := topologyWriters[o.format]
	if !ok {
		return fmt.Errorf("--format: want csv, yaml or dot, got %q", o.format)
	}
	mesh, err := discovery.ParseMesh(o.mesh)
	if err != nil {
		return fmt.Errorf("--mesh: %w", err)
	}
	if o.window <= 0 {
		return fmt.Errorf("--window: %v must be positive", o.window)
	}
	at := time.Now()
	if o.at != "" {
		if at, err = time.Parse(time.RFC3339, o.at); err != nil {
			return fmt.Errorf("--at: %w", err)
		}
	}
	prom, namespace, err := o.source()
	if err != nil {
		return err
	}
	api, err := source.NewPrometheusAPI(prom)
	if err != nil {
		return err
	}
	res, err := discovery.Discover(ctx, api, discovery.Options{
		Namespace: namespace, Window: o.window, At: at, Mesh: mesh, Logger: slog.Default(),
	})
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := write(&buf, res.Graph.Graph); err != nil {
		return err
	}
	if o.out == "" {
		if _, err := stdout.Write(buf.Bytes()); err != nil {
			return fmt.Errorf("writing the graph: %w", err)
		}
	} else if err := writeFileAtomic(o.out, buf.Bytes()); err != nil {
		return err
	}
	printTopologySummary(stderr, res, o.out)
	return nil
}

// source is the Prometheus configuration and namespace: the --config file's,
// with the flags on top.
func (o *topologyOptions) source() (source.PrometheusConfig, string, error) {
	prom := source.DefaultPrometheusConfig()
	namespace := "default"
	if o.app != "" && o.configFile == "" {
		return prom, "", errors.New("--app needs --config (the applications are listed there)")
	}
	if o.configFile != "" {
		cfg, err := config.Load(o.configFile)
		if err != nil {
			return prom, "", err
		}
		if cfg.Source.Prometheus != nil {
			prom = *cfg.Source.Prometheus
		} else if o.prometheusURL == "" {
			return prom, "", fmt.Errorf("%s has no source.prometheus and no --prometheus-url is given", o.configFile)
		}
		if namespace, err = o.configNamespace(cfg); err != nil {
			return prom, "", err
		}
	}
	if o.prometheusURL != "" {
		prom.URL = o.prometheusURL
	}
	if prom.URL == "" {
		return prom, "", errors.New("--prometheus-url (or --config with source.prometheus) is required")
	}
	if o.namespace != "" {
		namespace = o.namespace
	}
	return prom, namespace, nil
}

// configNamespace is the namespace the configuration names: the top-level
// one, or with apps the --app's (or the only app's); with several apps and
// no --app, --namespace chooses.
func (o *topologyOptions) configNamespace(cfg config.Config) (string, error) {
	if o.app == "" && len(cfg.Apps) > 1 && o.namespace != "" {
		return o.namespace, nil
	}
	app, err := pickApplication(cfg, o.app, o.configFile)
	if err != nil && o.app == "" {
		return "", fmt.Errorf("%w or give --namespace", err)
	}
	return app.Namespace, err
}

// printTopologySummary says what was found, for a person checking the graph.
func printTopologySummary(w io.Writer, res *discovery.Result, out string) {
	g := res.Graph.Graph
	fmt.Fprintf(w, "discovered from %s metrics in namespace %s (rates over %v up to %s): %d services, %d edges, roots: %s\n",
		res.Mesh, res.Namespace, res.Window, res.At.UTC().Format(time.RFC3339), len(g.Services), len(g.Edges), listOrNone(g.Roots()))
	if len(res.IngressOnly) > 0 {
		fmt.Fprintf(w, "seen only as targets of external traffic (no calls to or from other services): %s\n", strings.Join(res.IngressOnly, ", "))
	}
	if res.Cycle != "" {
		fmt.Fprintf(w, "%s: the forecasting model handles it; the synthetic generator and the simulator need an acyclic graph\n", res.Cycle)
	}
	if n := len(res.Warnings); n > 0 {
		fmt.Fprintf(w, "%d warnings (logged above)\n", n)
	}
	if out != "" {
		fmt.Fprintf(w, "wrote %s\n", out)
	}
}

func listOrNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so a failed run never leaves half a graph behind.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
