package app

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestMeasureDashboardCPU measures what 50 open dashboards add to the
// gateway's CPU per request: the process's CPU time per request (load
// generator included), the web UI on, without and with 50 live streams
// open, alternately. A measurement, not a check: it runs only
// with SLUICE_MEASURE_DASHBOARDS=1 and prints its figures (docs/webui.md).
func TestMeasureDashboardCPU(t *testing.T) {
	if os.Getenv("SLUICE_MEASURE_DASHBOARDS") == "" {
		t.Skip("a measurement: set SLUICE_MEASURE_DASHBOARDS=1 to run it")
	}
	const requests, workers, dashboards = 20000, 4, 50
	// The same config (web UI on) either way: only the 50 open dashboards
	// differ.
	measure := func(withUI bool) (perReq, idle float64) {
		f := newFixture(t, withConfig(uiConfig))
		ctx, cancel := context.WithCancel(context.Background())
		var streams sync.WaitGroup
		if withUI {
			jar, _ := cookiejar.New(nil)
			c := &http.Client{Jar: jar}
			resp, err := c.Post(f.admin+"/ui/api/session", "application/json", strings.NewReader(`{"key":"`+fxAdminKey+`"}`))
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("sign in: %v %v", resp, err)
			}
			resp.Body.Close()
			for range dashboards {
				req, _ := http.NewRequestWithContext(ctx, "GET", f.admin+"/ui/api/live", nil)
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				streams.Add(1)
				go func() {
					defer streams.Done()
					defer resp.Body.Close()
					sc := bufio.NewScanner(resp.Body)
					sc.Buffer(make([]byte, 1<<20), 4<<20)
					for sc.Scan() {
					}
				}()
			}
		}
		client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: workers}}
		send := func() {
			req, _ := http.NewRequest("POST", f.url+"/v1/chat/completions",
				strings.NewReader(`{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`))
			req.Header.Set("Authorization", "Bearer "+fxAlphaKey)
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		for range 200 { // warm up
			send()
		}
		start, wall := cpuTime(), time.Now()
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < requests; i += workers {
					send()
				}
			}()
		}
		wg.Wait()
		cpu, elapsed := cpuTime()-start, time.Since(wall)
		// Then idle: what the feed (and everything else running) costs a second.
		idleStart := cpuTime()
		time.Sleep(5 * time.Second)
		idle = (cpuTime() - idleStart).Seconds() / 5 * 1e3
		cancel()
		streams.Wait()
		_ = f.stop()
		perReq = cpu.Seconds() / requests * 1e6
		t.Logf("50 dashboards %v: %d requests in %v (%.0f/s), CPU %v, %.1f µs CPU per request; idle %.2f ms CPU per second", withUI, requests,
			elapsed.Round(time.Millisecond), requests/elapsed.Seconds(), cpu.Round(time.Millisecond), perReq, idle)
		return perReq, idle
	}
	// ABBA order: the process grows slower from one fixture to the next
	// (about 10% a pair here), which a fixed order would charge to one side.
	var sum [2]float64
	const rounds = 3
	for _, with := range []bool{false, true, true, false, false, true} {
		p, _ := measure(with)
		if with {
			sum[1] += p
		} else {
			sum[0] += p
		}
	}
	t.Logf("mean: %.1f µs CPU per request without dashboards, %.1f µs with %d (%+.1f%%)",
		sum[0]/rounds, sum[1]/rounds, dashboards, (sum[1]/sum[0]-1)*100)
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
