package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
)

// Shell completion: the app answers --generate-bash-completion
// (EnableBashCompletion) with the commands or flags that may follow; these
// scripts ask it on every <Tab>.

const bashCompletion = `# gsio-relay bash completion: source <(gsio-relay completion bash)
_gsio_relay_complete() {
	local cur opts
	COMPREPLY=()
	cur="${COMP_WORDS[COMP_CWORD]}"
	if [[ "$cur" == "-"* ]]; then
		opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" "$cur" --generate-bash-completion 2>/dev/null)
	else
		opts=$("${COMP_WORDS[@]:0:$COMP_CWORD}" --generate-bash-completion 2>/dev/null)
	fi
	COMPREPLY=($(compgen -W "$opts" -- "$cur"))
	return 0
}
complete -o bashdefault -o default -F _gsio_relay_complete gsio-relay
`

const zshCompletion = `#compdef gsio-relay
# gsio-relay zsh completion: source <(gsio-relay completion zsh)
_gsio_relay() {
	local -a opts
	local cur=${words[-1]}
	if [[ "$cur" == "-"* ]]; then
		opts=("${(@f)$(${words[@]:0:#words[@]-1} "$cur" --generate-bash-completion 2>/dev/null)}")
	else
		opts=("${(@f)$(${words[@]:0:#words[@]-1} --generate-bash-completion 2>/dev/null)}")
	fi
	if [[ "${opts[1]}" != "" ]]; then
		_describe 'values' opts
	else
		_files
	fi
}
compdef _gsio_relay gsio-relay
`

func completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print the shell completion script for bash or zsh",
		ArgsUsage: "bash|zsh",
		Description: "bash: source <(gsio-relay completion bash), or save it in /etc/bash_completion.d/gsio-relay\n" +
			"zsh:  source <(gsio-relay completion zsh), or save it as _gsio-relay in a directory of $fpath",
		Action: func(c *cli.Context) error {
			return writeCompletion(c.App.Writer, c.Args().First(), c.NArg())
		},
	}
}

func writeCompletion(w io.Writer, shell string, n int) error {
	if n != 1 {
		return fmt.Errorf("completion takes one shell: gsio-relay completion bash, or gsio-relay completion zsh")
	}
	switch shell {
	case "bash":
		_, err := io.WriteString(w, bashCompletion)
		return err
	case "zsh":
		_, err := io.WriteString(w, zshCompletion)
		return err
	}
	return fmt.Errorf("completion %q: want bash or zsh", shell)
}
