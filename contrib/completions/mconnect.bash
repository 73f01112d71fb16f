# bash completion for mconnect(1): options and their values, subcommands, host names.
#
# Options come from `mconnect [SUBCOMMAND] --help` itself, so they never disagree with the
# program; an option with a fixed set of values completes those values. Host names are the names
# on the Host lines of ~/.ssh/config (and of the files it Includes) that are no pattern (no *, ?
# or !), plus the masters running now as `mconnect status --json` names them ("alias": the host
# as typed when the master started). `stop` offers only the running masters, by alias and by
# destination (user@host:port, as `mconnect status` shows them): it can stop nothing else.
# Nothing read from a file is ever glob-expanded, except an Include's own pattern.

# Whether option $1 takes a value (as the next word or after '=').
_mconnect_takes_value() {
    case $1 in
        -p | --port | --ssh | --server | --client | --remote-ip | --persist | --socket | --config | --mux | \
            --predict | --family | --bind-server | --experimental-remote-ip | --transport) return 0 ;;
    esac
    return 1
}

# Prints the host names of one ssh config file and, recursively, of those it Includes
# (relative names are under ~/.ssh, as ssh reads them). $2 guards the depth.
_mconnect_config_hosts() {
    local file=$1 depth=${2:-0} line keyword word included
    local -a words
    local pattern='^([A-Za-z]+)([[:space:]]*=[[:space:]]*|[[:space:]]+)(.*)$'
    [[ -r $file && $depth -lt 8 ]] || return 0
    while read -r line; do
        [[ $line =~ $pattern ]] || continue
        keyword=${BASH_REMATCH[1],,}
        read -ra words <<<"${BASH_REMATCH[3]}"
        case $keyword in
            host)
                for word in "${words[@]}"; do
                    [[ $word == \#* ]] && break
                    word=${word#\"} word=${word%\"}
                    [[ -z $word || $word == *[\*\?\!]* ]] || printf '%s\n' "$word"
                done
                ;;
            include)
                for word in "${words[@]}"; do
                    [[ $word == \#* ]] && break
                    [[ $word == \~/* ]] && word=$HOME/${word#\~/}
                    [[ $word == /* ]] || word=$HOME/.ssh/$word
                    while IFS= read -r included; do
                        _mconnect_config_hosts "$included" $((depth + 1))
                    done < <(compgen -G "$word")
                done
                ;;
        esac
    done <"$file"
}

# The running masters as `mconnect status --json` names them: their "alias" (the host as typed
# when they started: what connecting takes), and with $1 = all their "destination" too
# (user@host:port: what `mconnect status` shows, which `stop` also takes).
_mconnect_masters() {
    local fields=alias
    [[ $1 == all ]] && fields='alias\|destination'
    mconnect status --json 2>/dev/null | grep -o "\"\($fields\)\": *\"[^\"]\+\"" | sed 's/.*"\([^"]*\)"$/\1/'
}

# The option names that `mconnect [SUBCOMMAND] --help` lists: the option words that begin a
# line of the help (not those quoted in the descriptions).
_mconnect_options() {
    mconnect ${1:+"$1"} --help 2>/dev/null | awk '{
        for (i = 1; i <= NF; i++) {
            word = $i; sub(/[=,].*$/, "", word)
            if (word !~ /^--?[A-Za-z0-9][-A-Za-z0-9]*$/) break
            print word
        }
    }' | sort -u
}

# COMPREPLY: the values of option $1 that start with $2, each after prefix $3.
_mconnect_option_values() {
    local option=$1 cur=$2 prefix=$3 values='' value
    case $option in
        --transport) values='udp ssh auto' ;;
        --predict) values='adaptive always never experimental' ;;
        --family) values='inet inet6 auto all prefer-inet prefer-inet6' ;;
        --bind-server) values='ssh any' ;;
        --experimental-remote-ip) values='local remote proxy' ;;
        --remote-ip) values='peer ssh-connection dns command: static:' ;;
        --persist) values='yes no' ;;
        --config | --socket | --mux | --client)
            compopt -o filenames 2>/dev/null
            mapfile -t COMPREPLY < <(compgen -f -- "$cur")
            return 0
            ;;
    esac
    for value in $values; do
        [[ $value == "$cur"* ]] && COMPREPLY+=("$prefix$value")
    done
    # "command:" and "static:" want more after them: no space yet.
    [[ ${#COMPREPLY[@]} -eq 1 && ${COMPREPLY[0]} == *: ]] && compopt -o nospace 2>/dev/null
    return 0
}

_mconnect() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=''
    ((COMP_CWORD > 0)) && prev=${COMP_WORDS[COMP_CWORD - 1]}
    local subcommands='status stop ip ssh-config doctor master'
    local subcommand='' word i first=1
    if ((COMP_CWORD > 1)) && [[ " $subcommands " == *" ${COMP_WORDS[1]} "* ]]; then
        subcommand=${COMP_WORDS[1]}
        first=2
    fi
    COMPREPLY=()

    # An option's value: "--opt=VALUE" as one word (= not in COMP_WORDBREAKS), "--opt" "=" "VALUE"
    # (bash's split when it is), or "--opt" "VALUE".
    if [[ $cur == --*=* ]]; then
        _mconnect_option_values "${cur%%=*}" "${cur#*=}" "${cur%%=*}="
        return 0
    elif [[ $cur == = ]] && _mconnect_takes_value "$prev"; then
        _mconnect_option_values "$prev" '' ''
        return 0
    elif [[ $prev == = ]] && ((COMP_CWORD >= 2)) && _mconnect_takes_value "${COMP_WORDS[COMP_CWORD - 2]}"; then
        _mconnect_option_values "${COMP_WORDS[COMP_CWORD - 2]}" "$cur" ''
        return 0
    elif _mconnect_takes_value "$prev"; then
        _mconnect_option_values "$prev" "$cur" ''
        return 0
    fi
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$(_mconnect_options "$subcommand")" -- "$cur")
        return 0
    fi

    # The word being completed starts at COMP_WORDS[start]: bash splits it at '@' and ':' too
    # (COMP_WORDBREAKS), so user@host:port arrives as "user" "@" "host" ":" "port". Readline
    # replaces only what follows the last of those in the word, the '@' included (bash keeps it
    # in the word, for @host): `kept` is what stays.
    local start=$COMP_CWORD typed kept='' k
    while ((start > first)) && [[ ${COMP_WORDS[start]} == [@:] || ${COMP_WORDS[start - 1]} == [@:] ]]; do
        ((start -= 1))
    done
    typed=$(IFS= && printf '%s' "${COMP_WORDS[*]:start:COMP_CWORD - start + 1}")
    for ((k = ${#typed} - 1; k >= 0; k--)); do
        [[ ${typed:k:1} == [@:] && $COMP_WORDBREAKS == *"${typed:k:1}"* ]] || continue
        if [[ ${typed:k:1} == : ]]; then kept=${typed:0:k+1}; else kept=${typed:0:k}; fi
        break
    done

    # Once the host is there, the rest is the remote command (or nothing, for a subcommand).
    for ((i = first; i < start; i++)); do
        word=${COMP_WORDS[i]}
        if [[ $word == -- ]]; then
            ((i + 1 < start)) && return 0
            break
        elif [[ $word == = ]]; then
            ((i += 1))
        elif [[ $word == -* ]]; then
            _mconnect_takes_value "$word" && [[ ${COMP_WORDS[i + 1]} != = ]] && ((i += 1))
        else
            return 0
        fi
    done

    local -a candidates
    local user=''
    case $subcommand in
        status) return 0 ;;
        stop) mapfile -t candidates < <(_mconnect_masters all | sort -u) ;;
        *)
            mapfile -t candidates < <({
                _mconnect_config_hosts "$HOME/.ssh/config"
                _mconnect_masters
            } | sort -u)
            # user@host: the hosts after the user; a subcommand only as the first word.
            if [[ $typed == *@* ]]; then
                user=${typed%@*}@
            elif ((start == 1)); then
                candidates+=($subcommands)
            fi
            ;;
    esac
    for word in "${candidates[@]}"; do
        word=$user$word
        [[ $word == "$typed"* ]] && COMPREPLY+=("${word#"$kept"}")
    done
    return 0
}

complete -F _mconnect mconnect
