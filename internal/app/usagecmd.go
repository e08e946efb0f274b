package app

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sluice-gateway/sluice/internal/config"
	"github.com/sluice-gateway/sluice/internal/usage"
	"github.com/sluice-gateway/sluice/internal/wire"
)

// usageCmd prints a usage report from the ledger: tokens, requests, errors
// and cost, grouped as asked.
func usageCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("usage", stderr)
	path := fs.String("config", "sluice.yaml", "config file (its usage.store is read)")
	dsn := fs.String("store", "", "the usage store itself (sqlite:PATH or postgres://...), instead of --config's")
	from := fs.String("from", "", "start, inclusive: RFC 3339 time or date (default: the start of this month, UTC)")
	to := fs.String("to", "", "end, exclusive: RFC 3339 time or date (default: now)")
	groupBy := fs.String("group-by", "subscription,model", "comma-separated: subscription, product, model, deployment, backend, region, currency, user, app, cache, day, hour, month")
	format := fs.String("format", "table", "table, csv or json")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *format != "table" && *format != "csv" && *format != "json" {
		fmt.Fprintf(stderr, "sluice usage: --format: want table, csv or json, got %q\n", *format)
		return &ExitError{Code: 2}
	}
	store, currency := *dsn, "USD"
	if store == "" {
		cfg, err := config.Load(*path, os.LookupEnv)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return &ExitError{Code: 1}
		}
		store, currency = cfg.Usage.Store, cfg.Usage.Prices.Currency
	}
	q, err := usage.ParseQuery(*from, *to, *groupBy, time.Now())
	if err != nil {
		fmt.Fprintln(stderr, "sluice usage:", err)
		return &ExitError{Code: 2}
	}
	st, err := usage.Open(ctx, store)
	if err != nil {
		return fmt.Errorf("usage.store: %w", err)
	}
	defer st.Close()
	rows, err := st.Report(ctx, q)
	if err != nil {
		return fmt.Errorf("usage report: %w", err)
	}
	return writeReport(stdout, *format, q.GroupBy, rows, currency)
}

// reportColumns are the figures of every row, after its groups.
var reportColumns = []string{"requests", "errors", "prompt_tokens", "completion_tokens", "total_tokens", "cached_tokens", "cost",
	"saved_tokens", "saved_cost"}

func writeReport(w io.Writer, format string, groups []string, rows []usage.Row, currency string) error {
	figures := func(r usage.Row) []string {
		return []string{itoa(r.Requests), itoa(r.Errors), itoa(r.PromptTokens), itoa(r.CompletionTokens),
			itoa(r.TotalTokens), itoa(r.CachedTokens), strconv.FormatFloat(r.Cost, 'f', 6, 64),
			itoa(r.SavedTokens), strconv.FormatFloat(r.SavedCost, 'f', 6, 64)}
	}
	switch format {
	case "json":
		type jsonRow struct {
			Group            map[string]string `json:"group"`
			Requests         int64             `json:"requests"`
			Errors           int64             `json:"errors"`
			PromptTokens     int64             `json:"prompt_tokens"`
			CompletionTokens int64             `json:"completion_tokens"`
			TotalTokens      int64             `json:"total_tokens"`
			CachedTokens     int64             `json:"cached_tokens"`
			Cost             float64           `json:"cost"`
			SavedTokens      int64             `json:"saved_tokens"`
			SavedCost        float64           `json:"saved_cost"`
			Currency         string            `json:"currency"`
		}
		out := make([]jsonRow, 0, len(rows))
		for _, r := range rows {
			out = append(out, jsonRow{r.Group, r.Requests, r.Errors, r.PromptTokens, r.CompletionTokens, r.TotalTokens, r.CachedTokens, r.Cost,
				r.SavedTokens, r.SavedCost, currency})
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	case "csv":
		cw := csv.NewWriter(w)
		_ = cw.Write(append(append([]string{}, groups...), reportColumns...))
		for _, r := range rows {
			rec := make([]string, 0, len(groups)+len(reportColumns))
			for _, g := range groups {
				rec = append(rec, r.Group[g])
			}
			_ = cw.Write(append(rec, figures(r)...))
		}
		cw.Flush()
		return cw.Error()
	case "table":
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
		head := append(append([]string{}, groups...), reportColumns...)
		head[len(head)-3] = "cost (" + currency + ")"
		head[len(head)-1] = "saved_cost (" + currency + ")"
		fmt.Fprintln(tw, strings.Join(head, "\t")+"\t")
		for _, r := range rows {
			var cells []string
			for _, g := range groups {
				// Records from before Sluice cleaned client strings may
				// hold control characters: never print them to a terminal.
				cells = append(cells, wire.CleanText(r.Group[g], wire.MaxModelBytes))
			}
			fmt.Fprintln(tw, strings.Join(append(cells, figures(r)...), "\t")+"\t")
		}
		return tw.Flush()
	}
	return fmt.Errorf("--format: want table, csv or json, got %q", format)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
