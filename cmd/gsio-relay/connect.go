package main

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

	"github.com/gorilla/websocket"
	"github.com/urfave/cli/v2"
)

// connectCommand is a minimal WebSocket client for trying a relay by hand:
// each stdin line is sent as one text frame, each received frame is printed
// as one line.
func connectCommand() *cli.Command {
	return &cli.Command{
		Name:      "connect",
		Usage:     "connect to a relay as a client: stdin lines are sent, received messages printed",
		ArgsUsage: "URL (e.g. ws://127.0.0.1:8787/ws?node_id=node-a)",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "auth-token", Usage: "bearer `TOKEN` for a relay started with --auth-token", EnvVars: envName("auth-token")},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return errors.New("connect takes one URL, e.g. ws://127.0.0.1:8787/ws")
			}
			h := http.Header{}
			if tok := c.String("auth-token"); tok != "" {
				h.Set("Authorization", "Bearer "+tok)
			}
			d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
			conn, resp, err := d.DialContext(c.Context, c.Args().First(), h)
			if err != nil {
				if resp != nil {
					return fmt.Errorf("connect %s: HTTP %s", c.Args().First(), resp.Status)
				}
				return fmt.Errorf("connect %s: %w", c.Args().First(), err)
			}
			defer conn.Close()
			done := make(chan error, 1)
			go func() {
				for {
					_, data, err := conn.ReadMessage()
					if err != nil {
						done <- err
						return
					}
					fmt.Fprintf(c.App.Writer, "%s\n", data)
				}
			}()
			lines := make(chan string)
			go func() {
				sc := bufio.NewScanner(os.Stdin)
				sc.Buffer(make([]byte, 64<<10), 16<<20)
				for sc.Scan() {
					lines <- sc.Text()
				}
				close(lines)
			}()
			for {
				select {
				case err := <-done:
					var ce *websocket.CloseError
					if errors.As(err, &ce) && ce.Code == websocket.CloseNormalClosure {
						return nil
					}
					return fmt.Errorf("connection ended: %w", err)
				case l, ok := <-lines:
					if !ok {
						_ = conn.WriteControl(websocket.CloseMessage,
							websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
						select {
						case <-done:
						case <-time.After(2 * time.Second):
						}
						return nil
					}
					if l == "" {
						continue
					}
					if err := conn.WriteMessage(websocket.TextMessage, []byte(l)); err != nil {
						return fmt.Errorf("send: %w", err)
					}
				}
			}
		},
	}
}
