//! The runner's settings: the one model every host reads
//! ([`orderly_core::settings`]), from flags, then the environment. Each declared
//! setting becomes a flag with its `ORDERLY_*` variable, so `orderly --help`
//! lists every one; the README's table is generated from the same
//! declarations (`orderly settings --markdown`, kept true by a test).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::parser::ValueSource;
use clap::{Arg, ArgMatches, Args, Command, FromArgMatches};
use orderly_core::settings::{ConfigSource, SETTINGS, Setting, SettingError, Settings, env_name, flag_name};

/// The values given by flag or environment; what is unset falls back to the
/// declared default inside [`Settings::load`].
#[derive(Debug, Clone, Default)]
pub struct SettingsArgs {
    given: BTreeMap<String, String>,
}

impl SettingsArgs {
    pub fn settings(&self) -> Result<Settings, SettingError> {
        Settings::load(self)
    }
}

impl ConfigSource for SettingsArgs {
    fn get(&self, key: &str) -> Option<String> {
        self.given.get(key).filter(|v| !v.is_empty()).cloned()
    }
}

fn hosts_note(setting: &Setting) -> String {
    match setting.hosts {
        orderly_core::settings::Hosts::All | orderly_core::settings::Hosts::Runner => String::new(),
        other => format!(" [{}]", other.label()),
    }
}

fn arg(setting: &Setting) -> Arg {
    let mut arg = Arg::new(setting.key)
        .long(flag_name(setting.key))
        .env(env_name(setting.key))
        .value_name("VALUE")
        .help(format!("{}{}", setting.meaning, hosts_note(setting)))
        .help_heading("Settings (flag, then ORDERLY_* variable)")
        .hide_env_values(setting.secret);
    if !setting.default.is_empty() {
        arg = arg.default_value(setting.default);
    }
    arg
}

impl Args for SettingsArgs {
    fn augment_args(mut command: Command) -> Command {
        for setting in SETTINGS {
            command = command.arg(arg(setting));
            if let Some(alias) = setting.alias {
                // The old name of a deployed stack: read, not advertised.
                command =
                    command.arg(Arg::new(alias.key).long(flag_name(alias.key)).env(env_name(alias.key)).hide(true));
            }
        }
        command
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl FromArgMatches for SettingsArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = Self::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        let keys = SETTINGS.iter().flat_map(|s| std::iter::once(s.key).chain(s.alias.map(|a| a.key)));
        for key in keys {
            // Defaults stay out: the settings model applies its own (the same text).
            if matches.value_source(key).is_some_and(|source| source != ValueSource::DefaultValue)
                && let Some(value) = matches.get_one::<String>(key)
            {
                self.given.insert(key.to_owned(), value.clone());
            }
        }
        Ok(())
    }
}

/// Settings for tests and embedding: every default but the data directory
/// and a loopback port chosen by the OS.
pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Settings {
    let mut settings = Settings::defaults();
    settings.addr = "127.0.0.1:0".parse().expect("a literal address");
    settings.data_dir = data_dir.into();
    settings
}

/// The SQLite database in the data directory.
pub fn database_path(data_dir: &Path) -> PathBuf {
    data_dir.join("orderly.db")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        settings: SettingsArgs,
    }

    #[test]
    fn flags_set_settings_and_unset_ones_keep_the_declared_default() {
        let cli = Cli::try_parse_from(["orderly", "--retry-base", "50ms", "--rate-limit", "off"]).unwrap();
        let settings = cli.settings.settings().unwrap();
        assert_eq!(settings.queues.retry_base, std::time::Duration::from_millis(50));
        assert!(!settings.resilience.rate_limit);
        assert_eq!(settings.notify_timeout, Settings::defaults().notify_timeout);
    }

    #[test]
    fn the_old_millisecond_flags_still_work() {
        let cli = Cli::try_parse_from(["orderly", "--notify-timeout-ms", "750"]).unwrap();
        assert_eq!(cli.settings.settings().unwrap().notify_timeout, std::time::Duration::from_millis(750));
    }

    #[test]
    fn the_readme_table_is_the_generated_one() {
        let readme = include_str!("../README.md");
        let (_, rest) = readme.split_once("<!-- settings:begin").expect("the README's settings markers");
        let (_, rest) = rest.split_once("-->\n").expect("the end of the begin marker");
        let (table, _) = rest.split_once("<!-- settings:end -->").expect("the README's settings end marker");
        assert_eq!(
            table,
            orderly_core::settings::markdown_table(),
            "README.md's configuration table is stale: regenerate it with `cargo run -- settings`"
        );
    }

    #[test]
    fn help_lists_every_setting_with_its_variable() {
        let help = <Cli as clap::CommandFactory>::command().render_long_help().to_string();
        for setting in SETTINGS {
            assert!(help.contains(&format!("--{}", flag_name(setting.key))), "{} missing from --help", setting.key);
            assert!(help.contains(&env_name(setting.key)), "{} missing from --help", env_name(setting.key));
        }
    }
}
