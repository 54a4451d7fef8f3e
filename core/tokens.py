"""Phase 2 of the seed: how many input and output tokens a task will take."""

from __future__ import annotations

from model_assigner.core.config import ScoringConfig
from model_assigner.core.config_bounds import MAX_ESTIMATE_TOKENS
from model_assigner.core.reasons import Reason, ReasonCode, reason
from model_assigner.core.types import Complexity, Task, TokenEstimate


def workspace_size(task: Task) -> int:
    """The number of files in the task's workspace, as the caller measured it
    (the seed's count_workspace_files): the App counts the repository's git
    tree, the ``assign`` command a local folder (bot/local_workspace.py).
    Not given: 0. The engine never reads a disk, so a path is only a name
    here (a webhook's ``owner/repo`` is no folder of the server's)."""
    return task.workspace_files if task.workspace_files is not None else 0


def estimate_token_usage(
    task: Task, config: ScoringConfig, complexity: Complexity, domain: str
) -> TokenEstimate:
    """The seed's estimate; complexity and domain come from Phase 1 so a batch
    classifies each task once."""
    base_input, base_output = config.token_estimates[complexity]
    input_est, output_est = float(base_input), float(base_output)
    adjustments: list[Reason] = [
        reason(ReasonCode.TOKENS_BASE, complexity=complexity, input=base_input, output=base_output)
    ]

    factor = config.domain_token_factors.get(domain)
    if factor is not None:
        input_est *= factor.input
        output_est *= factor.output
        adjustments.append(reason(ReasonCode.TOKENS_DOMAIN, domain=domain, input=factor.input,
                                  output=factor.output))

    workspace_files = workspace_size(task)
    for rule in config.workspace_size_factors:
        if workspace_files > rule.files_above:
            input_est *= rule.input
            output_est *= rule.output
            adjustments.append(reason(
                ReasonCode.TOKENS_WORKSPACE, files=workspace_files, above=rule.files_above,
                input=rule.input, output=rule.output,
            ))
            break

    calibration = config.calibration
    learned = calibration.learned.get(f"{complexity}/{domain}") if calibration.enabled else None
    learned_factor = 1.0
    if learned is not None and learned.factor != 1.0:
        learned_factor = learned.factor
        input_est *= learned_factor
        output_est *= learned_factor
        adjustments.append(reason(
            ReasonCode.TOKENS_CALIBRATION, factor=learned_factor,
            domain_samples=learned.domain_samples, domain=domain, samples=learned.samples,
            complexity=complexity,
        ))

    return TokenEstimate(
        # int() as in the seed, after rounding away float noise (7500 * 1.15).
        # Clamped: factors multiply, and no product may leave the bounds a
        # stored reservation must keep (core.types.MAX_COUNT).
        input_tokens=int(round(min(input_est, MAX_ESTIMATE_TOKENS), 6)),
        output_tokens=int(round(min(output_est, MAX_ESTIMATE_TOKENS), 6)),
        workspace_files=workspace_files,
        adjustments=adjustments,
        calibration=learned_factor,
        working_set=working_set_tokens(config, complexity, workspace_files),
    )


def working_set_tokens(config: ScoringConfig, complexity: Complexity, workspace_files: int) -> int:
    """What one turn of an agent holds at once (config: context_fit): a base
    per complexity, scaled up for a large workspace (more of it to search
    and read). 0 when the rule is off."""
    fit = config.context_fit
    if not fit.enabled:
        return 0
    tokens = float(fit.working_set_tokens[complexity])
    for rule in fit.workspace_factors:
        if workspace_files > rule.files_above:
            tokens *= rule.factor
            break
    return int(round(tokens, 6))
