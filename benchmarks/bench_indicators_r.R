# What an R user would run for the indicators of one round: survey's svyby on a JKn replicate
# design (PSU = school, strata = county within grade: grade 4 and grade 8 are separate samples,
# as in eqm), county x grade x subject means, level shares and gender means. Called by benchmarks/bench_indicators.py --r:  Rscript bench_indicators_r.R wide.csv out.csv
# Prints a JSON line with the estimation time (design construction + svyby calls; reading the CSV
# and loading the package excluded).
suppressPackageStartupMessages(library(survey))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], colClasses = c(county_code = "character", school_id = "character"))
for (s in c("math", "chinese")) {
  d[[paste0(s, "_level")]] <- factor(d[[paste0(s, "_level")]], levels = c("I", "II", "III", "IV"))
}
d$stratum <- paste(d$county_code, d$grade)  # one stratum per county x grade
t0 <- proc.time()
base <- svydesign(ids = ~school_id, strata = ~stratum, weights = ~weight, data = d)
rep <- as.svrepdesign(base, type = "JKn", mse = TRUE)
means <- svyby(~math + chinese, ~county_code + grade, rep, svymean)
levels <- svyby(~math_level + chinese_level, ~county_code + grade, rep, svymean)
gender <- svyby(~math + chinese, ~county_code + grade + gender, rep, svymean)
dt <- proc.time() - t0
elapsed <- dt[["elapsed"]]
cpu <- dt[["user.self"]] + dt[["sys.self"]]
out <- rbind(
  data.frame(county_code = means$county_code, grade = means$grade, subject = "math",
             estimate = means$math, se = SE(means)[, 1]),
  data.frame(county_code = means$county_code, grade = means$grade, subject = "chinese",
             estimate = means$chinese, se = SE(means)[, 2])
)
write.csv(out, args[2], row.names = FALSE)
cat(sprintf('{"estimation_s": %.3f, "estimation_cpu_s": %.3f, "replicates": %d}\n',
            elapsed, cpu, ncol(rep$repweights)))
