# fish completion for mconnect(1): options and their values, subcommands, host names.
#
# Options come from `mconnect [SUBCOMMAND] --help` itself; an option with a fixed set of values
# completes those values. Host names are the names on the Host lines of ~/.ssh/config (and of
# the files it Includes) that are no pattern (no *, ? or !), plus the masters running now as
# `mconnect status --json` names them ("alias": the host as typed when the master started).
# `stop` offers only the running masters, by alias and by destination (user@host:port, as
# `mconnect status` shows them): it can stop nothing else. The same rules as mconnect.bash.

set -g __mconnect_subcommands status stop ip ssh-config doctor master
set -g __mconnect_value_options -p --port --ssh --server --client --remote-ip --persist --socket --config --mux \
    --predict --family --bind-server --experimental-remote-ip --transport

# Prints the host names of one ssh config file and, recursively, of those it Includes
# (relative names are under ~/.ssh, as ssh reads them). $argv[2] guards the depth.
function __mconnect_config_hosts --argument-names file depth
    test -n "$depth"; or set depth 0
    test -r "$file"; and test $depth -lt 8; or return 0
    while read -l line
        set -l parts (string match -r '^\s*([A-Za-z]+)(?:\s*=\s*|\s+)(.*)$' -- $line); or continue
        set -l keyword (string lower -- $parts[2])
        for word in (string split -n ' ' -- (string replace -a \t ' ' -- $parts[3]))
            string match -q -- '#*' $word; and break
            switch $keyword
                case host
                    set word (string trim -c '"' -- $word)
                    string match -qr '[*?!]' -- $word; or echo $word
                case include
                    string match -q -- '~/*' $word; and set word $HOME/(string sub -s 3 -- $word)
                    string match -q -- '/*' $word; or set word $HOME/.ssh/$word
                    # The Include's own pattern, expanded by sh (fish cannot glob a variable):
                    # nothing in it is run.
                    for included in (sh -c 'for f in $1; do [ -e "$f" ] && printf "%s\n" "$f"; done' sh $word)
                        __mconnect_config_hosts $included (math $depth + 1)
                    end
            end
        end
    end <$file
end

# The running masters as `mconnect status --json` names them: their "alias" (the host as typed
# when they started: what connecting takes), and with $argv[1] = all their "destination" too
# (user@host:port: what `mconnect status` shows, which `stop` also takes).
function __mconnect_masters --argument-names which
    set -l fields alias
    test "$which" = all; and set fields 'alias|destination'
    mconnect status --json 2>/dev/null | string match -ar '"(?:'$fields')": *"[^"]+"' | string replace -r '.*"([^"]+)"$' '$1'
end

# The option words that begin a line of `mconnect [SUBCOMMAND] --help`, without =VALUE or comma.
function __mconnect_options --argument-names sub
    for line in (mconnect $sub --help 2>/dev/null)
        for word in (string split -n ' ' -- $line)
            set word (string replace -r '[=,].*$' '' -- $word)
            string match -qr '^--?[A-Za-z0-9][-A-Za-z0-9]*$' -- $word; or break
            echo $word
        end
    end | sort -u
end

# The values of option $argv[1], each after prefix $argv[2] ("--transport=" in that form).
function __mconnect_option_values --argument-names option prefix
    set -l values
    switch $option
        case --transport
            set values udp ssh auto
        case --predict
            set values adaptive always never experimental
        case --family
            set values inet inet6 auto all prefer-inet prefer-inet6
        case --bind-server
            set values ssh any
        case --experimental-remote-ip
            set values local remote proxy
        case --remote-ip
            set values peer ssh-connection dns command: static:
        case --persist
            set values yes no
        case --config --socket --mux --client
            for path in (__fish_complete_path (commandline -ct | string replace -r '^--[^=]*=' ''))
                printf '%s%s\n' "$prefix" $path
            end
            return
    end
    printf '%s\n' $prefix$values
end

# Every candidate for the token under the cursor, as "WORD\tDESCRIPTION" or "WORD".
function __mconnect_complete
    set -l words (commandline -opc)
    set -l cur (commandline -ct)
    set -l sub
    set -l first 2
    if test (count $words) -ge 2; and contains -- $words[2] $__mconnect_subcommands
        set sub $words[2]
        set first 3
    end

    # An option's value: "--opt=VALUE" or "--opt" "VALUE".
    if string match -qr '^--[^=]+=' -- $cur
        set -l option (string replace -r '=.*' '' -- $cur)
        __mconnect_option_values $option $option=
        return
    end
    if contains -- $words[-1] $__mconnect_value_options
        __mconnect_option_values $words[-1] ''
        return
    end
    if string match -q -- '-*' $cur
        __mconnect_options $sub
        return
    end

    # Once the host is there, the rest is the remote command (or nothing, for a subcommand).
    set -l i $first
    while test $i -le (count $words)
        set -l word $words[$i]
        if test "$word" = --
            test $i -lt (count $words); and return
            break
        else if string match -q -- '-*' $word
            contains -- $word $__mconnect_value_options; and set i (math $i + 1)
        else
            return
        end
        set i (math $i + 1)
    end

    set -l user (string match -r '^.*@' -- $cur)
    switch "$sub"
        case status
            return
        case stop
            for master in (__mconnect_masters all | sort -u)
                printf '%s\tmaster\n' $master
            end
        case '*'
            if test (count $words) -eq 1
                printf '%s\tsubcommand\n' $__mconnect_subcommands
            end
            for host in (begin; __mconnect_config_hosts ~/.ssh/config; __mconnect_masters; end | sort -u)
                printf '%s%s\thost\n' "$user" $host
            end
    end
end

complete -c mconnect -f -a '(__mconnect_complete)'
