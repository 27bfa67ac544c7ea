// Peer: Go net/http, static (CGO_ENABLED=0). The same echo as scf-lean's own (src/main.rs): the event
// checked to be JSON (400 if not), echoed as received, with the context from the X-Scf-* headers.
//
//	cd bench/peers/go && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o /tmp/peer-go .
package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strconv"
)

type context struct {
	RequestID       *string `json:"request_id"`
	FunctionName    *string `json:"function_name"`
	FunctionVersion *string `json:"function_version"`
	Namespace       *string `json:"namespace"`
	MemoryMB        *uint64 `json:"memory_limit_in_mb"`
	TimeoutMS       *uint64 `json:"time_limit_in_ms"`
	Region          *string `json:"tencentcloud_region"`
	AppID           *string `json:"tencentcloud_appid"`
	Uin             *string `json:"tencentcloud_uin"`
}

func text(h http.Header, k string) *string {
	if v, ok := h[k]; ok && len(v) > 0 {
		return &v[0]
	}
	return nil
}

func num(h http.Header, k string) *uint64 {
	if v := text(h, k); v != nil {
		if n, err := strconv.ParseUint(*v, 10, 64); err == nil {
			return &n
		}
	}
	return nil
}

func invoke(w http.ResponseWriter, r *http.Request) {
	event, err := io.ReadAll(r.Body)
	if err != nil || !json.Valid(event) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(400)
		w.Write([]byte(`{"errorCode":400,"errorMessage":"the event is not valid JSON"}`))
		return
	}
	h := r.Header
	ctx, _ := json.Marshal(context{
		text(h, "X-Scf-Request-Id"), text(h, "X-Scf-Name"), text(h, "X-Scf-Version"),
		text(h, "X-Scf-Namespace"), num(h, "X-Scf-Memory"), num(h, "X-Scf-Timeout"),
		text(h, "X-Scf-Region"), text(h, "X-Scf-Appid"), text(h, "X-Scf-Uin"),
	})
	out := make([]byte, 0, len(event)+len(ctx)+24)
	out = append(out, `{"event":`...)
	out = append(out, event...)
	out = append(out, `,"context":`...)
	out = append(out, ctx...)
	out = append(out, '}')
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(out)))
	w.Write(out)
}

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "9000"
	}
	http.HandleFunc("/event-invoke", invoke)
	if err := http.ListenAndServe("0.0.0.0:"+port, nil); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
